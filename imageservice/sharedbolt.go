package imageservice

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// boltLinger is how long the metadata database stays open after its last
// transaction, so a burst of transactions (one per blob as a push starts
// its uploads) opens it once.
const boltLinger = 50 * time.Millisecond

// boltMaxHold is how long a process keeps the database open through
// back-to-back transactions while another process waits for it; then it
// closes it between two transactions and lets the other in (bolt retries a
// locked file every 50 ms, so the next open waits boltYield).
const (
	boltMaxHold = 200 * time.Millisecond
	boltYield   = 80 * time.Millisecond
)

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

	mu       sync.Mutex
	db       *bolt.DB
	openedAt time.Time
	users    int
	timer    *time.Timer
	closed   bool
	yielded  time.Time // when this process last closed for a waiter
	// marker is the file that says this one waits: PATH.waiting.PID-N.
	marker string
}

var sharedBolts atomic.Int64

func newSharedBolt(path, root string, timeout time.Duration) *sharedBolt {
	return &sharedBolt{path: path, root: root, timeout: timeout,
		marker: fmt.Sprintf("%s.waiting.%d-%d", path, os.Getpid(), sharedBolts.Add(1))}
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
		if wait := boltYield - time.Since(s.yielded); wait > 0 {
			time.Sleep(wait) // the waiter we closed for gets its turn
		}
		// Say that we wait, so a process holding the database through
		// many transactions lets us in between two (see release).
		_ = os.WriteFile(s.marker, nil, 0o600)
		db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.timeout})
		_ = os.Remove(s.marker)
		if err != nil {
			if errors.Is(err, bolterrors.ErrTimeout) {
				return nil, &StoreInUseError{Root: s.root, Waited: s.timeout}
			}
			return nil, fmt.Errorf("open metadata %s: %w", s.path, err)
		}
		s.db, s.openedAt = db, time.Now()
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
	if time.Since(s.openedAt) > boltMaxHold && s.othersWaiting() {
		_ = db.Close()
		s.db, s.yielded = nil, time.Now()
		return
	}
	s.timer = time.AfterFunc(boltLinger, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.users == 0 && s.db == db {
			_ = db.Close()
			s.db = nil
		}
	})
}

// othersWaiting reports whether another process waits for the database.
func (s *sharedBolt) othersWaiting() bool {
	ms, _ := filepath.Glob(s.path + ".waiting.*")
	for _, m := range ms {
		if m == s.marker {
			continue
		}
		id := m[strings.LastIndexByte(m, '.')+1:]
		pid, err := strconv.Atoi(id[:max(strings.IndexByte(id, '-'), 0)])
		if err != nil {
			continue
		}
		if _, ok := processStart(pid); !ok {
			_ = os.Remove(m) // a waiter that was killed
			continue
		}
		return true
	}
	return false
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
