package imageservice

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// boltLinger is how long the metadata database stays open after its last
// transaction, so a burst of transactions (one per blob as a push starts
// its uploads) opens it once.
const boltLinger = 50 * time.Millisecond

// sharedBolt is the embedded store's metadata database as containerd's
// metadata.DB sees it (a Transactor), opened only around transactions:
// bolt locks its file for as long as it is open, so holding it for a whole
// push would keep every other process off the store for minutes. Between
// transactions (and boltLinger after the last) the file is closed and
// other ctrpush processes on the same store run theirs. Everything that
// must not change under another process lives in the database itself
// (leases hold content against another process's garbage collection).
type sharedBolt struct {
	path    string
	root    string
	timeout time.Duration

	mu     sync.Mutex
	db     *bolt.DB
	users  int
	timer  *time.Timer
	closed bool
}

func newSharedBolt(path, root string, timeout time.Duration) *sharedBolt {
	return &sharedBolt{path: path, root: root, timeout: timeout}
}

var errStoreClosed = fmt.Errorf("store closed: %w", errdefs.ErrFailedPrecondition)

// acquire opens the database if it is not open (waiting at most the
// timeout for another process's transaction) and counts a user.
func (s *sharedBolt) acquire() (*bolt.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errStoreClosed
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.db == nil {
		db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.timeout})
		if err != nil {
			if errors.Is(err, bolterrors.ErrTimeout) {
				return nil, &StoreInUseError{Root: s.root, Waited: s.timeout}
			}
			return nil, fmt.Errorf("open metadata %s: %w", s.path, err)
		}
		s.db = db
	}
	s.users++
	return s.db, nil
}

// release ends a user; the last one closes the database after the linger.
func (s *sharedBolt) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users--
	if s.users > 0 || s.db == nil {
		return
	}
	db := s.db
	s.timer = time.AfterFunc(boltLinger, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.users == 0 && s.db == db {
			_ = db.Close()
			s.db = nil
		}
	})
}

// View runs a read-only transaction.
func (s *sharedBolt) View(fn func(*bolt.Tx) error) error {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	return db.View(fn)
}

// Update runs a read-write transaction.
func (s *sharedBolt) Update(fn func(*bolt.Tx) error) error {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	return db.Update(fn)
}

// Close closes the database for good.
func (s *sharedBolt) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}
