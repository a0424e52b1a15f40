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

// ErrClosed is the error of a read through a Reader that was closed.
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

// Source is one blob shared among a fixed number of consumers, each
// reading it through its own Reader. Its methods and those of its Readers
// may be called from any goroutines.
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

// New shares ra, which holds size bytes, among n consumers (n ≥ 1) with a
// window of at most window bytes. The window is raised to 64 KiB if
// smaller, then lowered to size if larger: a window of size bytes or more
// buffers the whole blob, read from ra at most once. The window's memory is
// taken at the first read and given back when every consumer is closed.
// Each consumer holds the window back until it reads or is closed, so all
// n Readers must be closed in the end.
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

// Reader returns consumer i's Reader (0 ≤ i < n). It panics if i was
// already taken.
func (s *Source) Reader(i int) *Reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken[i] {
		panic("fanout: Reader taken twice")
	}
	s.taken[i] = true
	return &Reader{s: s, i: i}
}

// Stats reports the bytes read so far from the underlying ReaderAt into
// the window, for all consumers (shared), and those read from it directly
// by single consumers whose reads started before or past the window
// (reread). A blob read once by every consumer, none going back further
// than the window, gives shared == size and reread == 0.
func (s *Source) Stats() (shared, reread int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shared, s.reread
}

// Reader is one consumer's io.ReaderAt on the shared blob. Its position,
// which holds the window back when the window is full, is the end of its
// last read (0 before the first), or where it is reading now.
type Reader struct {
	s *Source
	i int
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt does: it returns
// fewer only with an error, and io.EOF when the read reaches past the end
// of the blob. Bytes still in the window are copied from it; bytes past
// it are read into it, once for all consumers, waiting while the window
// is full and the slowest open consumer holds it; bytes before it (or
// beyond its end) are read from the underlying ReaderAt for this
// consumer alone. After Close it returns ErrClosed.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.open[r.i]:
		return 0, ErrClosed
	case off < 0:
		return 0, errors.New("fanout: negative offset")
	case off >= s.size:
		return 0, io.EOF
	}
	var eof error
	if off+int64(len(p)) > s.size {
		p, eof = p[:s.size-off], io.EOF
	}
	n := 0
	for n < len(p) {
		if !s.open[r.i] { // closed by another goroutine meanwhile
			return n, ErrClosed
		}
		at := off + int64(n)
		switch {
		case at < s.lo || at > s.hi:
			// Outside the window: for this consumer alone. (A read
			// larger than the window goes through it piece by piece.)
			m, err := s.direct(p[n:], at)
			n += m
			s.moved(r.i, off+int64(n))
			if err != nil {
				return n, err
			}
		case at < s.hi:
			i := at % s.window
			n += copy(p[n:], s.buf[i:min(s.window, i+s.hi-at)])
			s.moved(r.i, off+int64(n))
		default: // at == s.hi: more is needed
			// This consumer needs nothing before hi any more, even if it
			// jumped here from before the window: it must not hold the
			// window back for itself.
			s.pos[r.i] = at
			if err := s.fill(); err != nil {
				return n, err
			}
		}
	}
	return n, eof
}

// moved records that consumer i now stands at pos, and wakes those who
// wait for room, which this may have freed.
func (s *Source) moved(i int, pos int64) {
	s.pos[i] = pos
	if s.waiting > 0 {
		s.cond.Broadcast()
	}
}

// direct reads p at off from the underlying ReaderAt, without the lock.
func (s *Source) direct(p []byte, off int64) (int, error) {
	s.mu.Unlock()
	n, err := s.ra.ReadAt(p, off)
	s.mu.Lock()
	s.reread += int64(n)
	return n, readErr(n, len(p), err)
}

// readErr is the error of a read from the underlying ReaderAt that got got
// of the want bytes asked for, all of them before the blob's size: io.EOF
// there means the ReaderAt is shorter than the size given to New. A short
// read without an error is progress (the caller reads on), unless nothing
// came at all.
func readErr(got, want int, err error) error {
	switch {
	case got == want:
		return nil
	case err == io.EOF, err == nil && got == 0:
		return io.ErrUnexpectedEOF
	}
	return err
}

// fill makes the window hold more bytes past hi, or waits until another
// consumer did or room was freed. Called with the lock held.
func (s *Source) fill() error {
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
	return readErr(m, int(n), err)
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

// Close ends the consumer: it no longer holds the window back, and the
// consumers waiting for room are woken. A read of this Reader in progress
// in another goroutine ends with ErrClosed if it still needs bytes, and
// later reads return ErrClosed. Close is idempotent and returns nil.
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
