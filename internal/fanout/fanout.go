// Package fanout shares one read of a blob among several consumers that
// read it at their own pace, each through its own io.ReaderAt: the bytes
// come from the underlying ReaderAt once, through a window of bounded
// size. A consumer ahead of the slowest by a full window waits; a consumer
// that goes back to an offset still in the window reads it from there;
// one that goes back further reads from the underlying ReaderAt alone.
package fanout

import (
	"errors"
	"io"
	"sync"
)

// ErrClosed is a read through a Reader that was closed.
var ErrClosed = errors.New("fanout: reader closed")

const (
	minWindow = 64 << 10
	// fillPiece is the most one fill reads: small enough that the
	// consumers copy the bytes out while they are still in the CPU's
	// cache.
	fillPiece = 256 << 10
)

// buffers keeps windows for reuse, one pool per power-of-two size from
// minWindow up: a window is allocated once and reused by the blobs after
// it (a fresh one per blob costs a page fault per 4 KiB on first touch).
var buffers [24]sync.Pool

// class is the pool index and size of a window of n bytes.
func class(n int64) (int, int64) {
	c, size := 0, int64(minWindow)
	for size < n {
		c, size = c+1, size*2
	}
	return c, size
}

func getBuffer(n int64) []byte {
	c, size := class(n)
	if c >= len(buffers) {
		return make([]byte, n)
	}
	if b, ok := buffers[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, size)
}

func putBuffer(b []byte) {
	c, size := class(int64(cap(b)))
	if c < len(buffers) && int64(cap(b)) == size {
		b = b[:cap(b)]
		buffers[c].Put(&b)
	}
}

// Source is one blob shared among n consumers.
type Source struct {
	ra     io.ReaderAt
	size   int64
	window int64

	mu   sync.Mutex
	cond *sync.Cond
	// buf is a ring of window bytes holding [lo, hi): offset x at
	// buf[x%window].
	buf     []byte
	lo, hi  int64
	filling bool
	waiting int // consumers waiting on cond
	pos     []int64
	open    []bool
	taken   []bool
	left    int
	shared  int64
	reread  int64
}

// New shares ra (size bytes) among n consumers with a window of at most
// window bytes: clamped to at least 64 KiB and at most size.
func New(ra io.ReaderAt, size int64, n int, window int64) *Source {
	window = max(window, minWindow)
	window = min(window, max(size, 0))
	s := &Source{ra: ra, size: size, window: window, pos: make([]int64, n), open: make([]bool, n), taken: make([]bool, n), left: n}
	for i := range s.open {
		s.open[i] = true
	}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Reader returns consumer i's view (0 ≤ i < n); each i is taken once.
func (s *Source) Reader(i int) *Reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken[i] {
		panic("fanout: Reader taken twice")
	}
	s.taken[i] = true
	return &Reader{s: s, i: i}
}

// Stats reports the bytes read from the underlying ReaderAt into the
// window (shared) and by consumers that read outside it (reread).
func (s *Source) Stats() (shared, reread int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shared, s.reread
}

// Reader is one consumer's io.ReaderAt.
type Reader struct {
	s *Source
	i int
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt does.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	s := r.s
	if off < 0 {
		return 0, errors.New("fanout: negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	var eof error
	if off+int64(len(p)) > s.size {
		p, eof = p[:s.size-off], io.EOF
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open[r.i] {
		return 0, ErrClosed
	}
	n := 0
	for n < len(p) {
		at := off + int64(n)
		switch {
		case at < s.lo || at > s.hi:
			// Outside the window: for this consumer alone. (A read
			// larger than the window goes through it piece by piece.)
			m, err := s.direct(p[n:], at)
			n += m
			s.pos[r.i] = off + int64(n)
			if err != nil {
				return n, err
			}
		case at < s.hi:
			i := at % s.window
			m := copy(p[n:], s.buf[i:min(s.window, i+s.hi-at)])
			n += m
			s.pos[r.i] = off + int64(n)
			if s.waiting > 0 {
				s.cond.Broadcast() // this consumer moved on: room may be free
			}
		default: // at == s.hi: more is needed
			if err := s.fill(r.i); err != nil {
				return n, err
			}
			if !s.open[r.i] {
				return n, ErrClosed
			}
		}
	}
	return n, eof
}

// direct reads p at off from the underlying ReaderAt, without the lock.
func (s *Source) direct(p []byte, off int64) (int, error) {
	s.mu.Unlock()
	n, err := s.ra.ReadAt(p, off)
	s.mu.Lock()
	s.reread += int64(n)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

// fill makes the window hold more bytes past hi, or waits until another
// consumer did or room was freed. Called with the lock held.
func (s *Source) fill(i int) error {
	if s.filling {
		s.wait()
		return nil
	}
	if s.hi-s.lo >= s.window {
		low := s.hi
		for j, open := range s.open {
			if open {
				low = min(low, max(s.pos[j], s.lo))
			}
		}
		if low == s.lo {
			s.wait() // the slowest holds the window: wait for it
			return nil
		}
		s.lo = low
	}
	if s.buf == nil {
		s.buf = getBuffer(s.window)
	}
	at := s.hi
	start := at % s.window
	n := min(int64(fillPiece), s.window-(s.hi-s.lo), s.size-s.hi, s.window-start)
	dst := s.buf[start : start+n]
	s.filling = true
	s.mu.Unlock()
	m, err := s.ra.ReadAt(dst, at)
	s.mu.Lock()
	s.filling = false
	if s.waiting > 0 {
		s.cond.Broadcast()
	}
	if s.left == 0 { // every consumer closed meanwhile
		s.release()
		return ErrClosed
	}
	s.hi += int64(m)
	s.shared += int64(m)
	if err == io.EOF && int64(m) == n {
		err = nil
	}
	if err == nil && m == 0 {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// wait waits on cond, counted so that those who move on know to wake it.
func (s *Source) wait() {
	s.waiting++
	s.cond.Wait()
	s.waiting--
}

// release gives the window back for reuse.
func (s *Source) release() {
	if s.buf != nil {
		putBuffer(s.buf)
		s.buf = nil
	}
}

// Close ends the consumer: it no longer holds the window back.
func (r *Reader) Close() error {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open[r.i] {
		return nil
	}
	s.open[r.i] = false
	s.left--
	if s.left == 0 && !s.filling {
		s.release()
	}
	if s.waiting > 0 {
		s.cond.Broadcast()
	}
	return nil
}
