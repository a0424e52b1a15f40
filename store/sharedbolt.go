package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ctrpush/ctrpush/internal/owner"
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
	// damaged is set once the database was found damaged: every later
	// transaction returns it without touching the file again.
	damaged *DamagedError
}

// DamagedError says the embedded store's metadata database (bolt) is
// damaged — truncated, overwritten, not a bolt file — so no image, lease
// or blob record can be read from it. Err is what bolt reported (or
// panicked with). It wraps errdefs.ErrDataLoss.
type DamagedError struct {
	Root string // the store's directory
	Path string // the metadata database
	Err  error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("store %s: the metadata database %s is damaged (%v)", e.Root, e.Path, e.Err)
}

// Unwrap lets errdefs.IsDataLoss hold.
func (e *DamagedError) Unwrap() []error { return []error{e.Err, errdefs.ErrDataLoss} }

// damagedBy records that the database is damaged (what bolt said: err,
// or a panic's value) and closes it; every later call returns the error.
// Call with s.mu held.
func (s *sharedBolt) damagedBy(cause any) *DamagedError {
	if s.damaged != nil {
		return s.damaged
	}
	err, ok := cause.(error)
	if !ok {
		err = fmt.Errorf("%v", cause)
	}
	s.damaged = &DamagedError{Root: s.root, Path: s.path, Err: err}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.db != nil {
		db := s.db
		s.db = nil
		func() {
			defer func() { _ = recover() }()
			_ = db.Close()
		}()
	}
	return s.damaged
}

// openDamaged reports whether an error of bolt.Open says the file is not
// a sound bolt database (rather than: it could not be opened).
func openDamaged(err error) bool {
	return errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) ||
		errors.Is(err, bolterrors.ErrVersionMismatch) || strings.HasPrefix(err.Error(), "file size too small")
}

// guarded runs fn, which reads the database file through bolt: a damaged
// file makes bolt panic (a page of an unknown type, a freelist pointing
// past the end) or fault (a page past the end of a truncated file, read
// through its memory map). Both come back as a DamagedError.
func (s *sharedBolt) guarded(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if !panickedInBolt() {
				panic(r) // not the database's damage: a bug above it
			}
			s.mu.Lock()
			err = s.damagedBy(r)
			s.mu.Unlock()
		}
	}()
	return fn()
}

// panickedInBolt reports, from a deferred function recovering a panic,
// whether bolt's own code panicked (or faulted) rather than code that
// runs inside a transaction.
func panickedInBolt() bool {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") && !strings.Contains(f.Function, "store.(*sharedBolt)") {
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
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
	if s.damaged != nil {
		return nil, s.damaged
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
		db, err := s.open()
		_ = os.Remove(s.marker)
		if err != nil {
			var damaged *DamagedError
			switch {
			case errors.As(err, &damaged):
				return nil, damaged
			case errors.Is(err, bolterrors.ErrTimeout):
				return nil, &InUseError{Root: s.root, Waited: s.timeout}
			case openDamaged(err):
				return nil, s.damagedBy(err)
			}
			return nil, fmt.Errorf("open metadata %s: %w", s.path, err)
		}
		s.db, s.openedAt = db, time.Now()
	}
	s.users++
	return s.db, nil
}

// open opens the database file (bolt reads its meta and freelist pages
// there, and panics on some damage). Call with s.mu held.
func (s *sharedBolt) open() (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if !panickedInBolt() {
				panic(r)
			}
			db, err = nil, s.damagedBy(r)
		}
	}()
	return bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.timeout})
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
		if !owner.Running(pid) {
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
	return s.guarded(func() error { return db.View(fn) })
}

// Update runs a read-write transaction.
func (s *sharedBolt) Update(fn func(*bolt.Tx) error) error {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	return s.guarded(func() error { return db.Update(fn) })
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
