package fanout

import (
	"bytes"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errDisk = errors.New("disk error")

// countingReaderAt counts the bytes read; fail makes reads fail with errDisk.
type countingReaderAt struct {
	b    []byte
	n    atomic.Int64
	fail atomic.Bool
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if c.fail.Load() {
		return 0, errDisk
	}
	if off >= int64(len(c.b)) {
		return 0, io.EOF
	}
	n := copy(p, c.b[off:])
	c.n.Add(int64(n))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func blob(t *testing.T, n int) *countingReaderAt {
	t.Helper()
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		t.Fatal(err)
	}
	return &countingReaderAt{b: b}
}

// within fails the test when f does not return in time (a deadlock).
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("not done within %s: deadlock", d)
	}
}

// Three consumers with different read sizes get the right bytes, and the
// blob is read from the source exactly once.
func TestThreeConsumersReadOnce(t *testing.T) {
	src := blob(t, 20<<20)
	want := sha256.Sum256(src.b)
	s := New(src, int64(len(src.b)), 3, 8<<20)
	sums := make([][32]byte, 3)
	within(t, 20*time.Second, func() {
		var wg sync.WaitGroup
		for i, piece := range []int{32 << 10, 8 << 20, 1 << 20} {
			wg.Go(func() {
				r := s.Reader(i)
				defer r.Close()
				h := sha256.New()
				buf := make([]byte, piece)
				if _, err := io.CopyBuffer(h, io.NewSectionReader(r, 0, int64(len(src.b))), buf); err != nil {
					t.Error(err)
				}
				copy(sums[i][:], h.Sum(nil))
			})
		}
		wg.Wait()
	})
	for i, sum := range sums {
		if sum != want {
			t.Fatalf("consumer %d read other bytes", i)
		}
	}
	shared, reread := s.Stats()
	if src.n.Load() != int64(len(src.b)) || shared != int64(len(src.b)) || reread != 0 {
		t.Fatalf("source read %d bytes (shared %d, reread %d), want %d once", src.n.Load(), shared, reread, len(src.b))
	}
}

// A fast consumer is never more than the window ahead of a slow one.
func TestBackpressure(t *testing.T) {
	const window, piece = 1 << 20, 64 << 10
	src := blob(t, 8<<20)
	s := New(src, int64(len(src.b)), 2, window)
	var slowPos, worst atomic.Int64
	within(t, 20*time.Second, func() {
		var wg sync.WaitGroup
		wg.Go(func() { // fast
			r := s.Reader(0)
			defer r.Close()
			buf := make([]byte, piece)
			for off := int64(0); off < int64(len(src.b)); off += piece {
				if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if ahead := off + piece - slowPos.Load(); ahead > worst.Load() {
					worst.Store(ahead)
				}
			}
		})
		wg.Go(func() { // slow
			r := s.Reader(1)
			defer r.Close()
			buf := make([]byte, piece)
			for off := int64(0); off < int64(len(src.b)); off += piece {
				time.Sleep(time.Millisecond)
				if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				slowPos.Store(off + piece)
			}
		})
		wg.Wait()
	})
	// The fast one's read ends at most a window past the slow one's last
	// read (plus the read the slow one is in, not yet recorded).
	if w := worst.Load(); w > window+piece {
		t.Fatalf("the fast consumer got %d bytes ahead of the slow one, window %d", w, window)
	}
	if worst.Load() < window/2 {
		t.Fatalf("the fast consumer was at most %d bytes ahead: the window was not used", worst.Load())
	}
}

// A consumer that goes back to an offset still in the window reads it
// from there; one that goes back before it reads the source again, for
// itself alone, and gets the right bytes.
func TestGoingBack(t *testing.T) {
	src := blob(t, 16<<20)
	s := New(src, int64(len(src.b)), 2, 4<<20)
	a, b := s.Reader(0), s.Reader(1)
	read := func(r *Reader, off, n int64) {
		t.Helper()
		p := make([]byte, n)
		if _, err := r.ReadAt(p, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, src.b[off:off+n]) {
			t.Fatalf("other bytes at %d", off)
		}
	}
	read(a, 0, 3<<20)
	read(b, 0, 2<<20+512<<10)
	read(a, 2<<20, 1<<20) // back, inside the window
	if _, reread := s.Stats(); reread != 0 {
		t.Fatalf("a read inside the window went to the source (%d bytes)", reread)
	}
	// Both move on far enough that the window leaves 0 behind.
	within(t, 10*time.Second, func() {
		var wg sync.WaitGroup
		wg.Go(func() { read(a, 3<<20, 9<<20) })
		wg.Go(func() { read(b, 2<<20+512<<10, 9<<20+512<<10) })
		wg.Wait()
	})
	before := src.n.Load()
	read(a, 0, 1<<20) // back before the window
	shared, reread := s.Stats()
	if reread != 1<<20 || src.n.Load()-before != 1<<20 {
		t.Fatalf("going back before the window reread %d bytes (source %d), want 1 MiB", reread, src.n.Load()-before)
	}
	within(t, 10*time.Second, func() {
		var wg sync.WaitGroup
		wg.Go(func() { read(a, 1<<20, 15<<20); a.Close() })
		wg.Go(func() { read(b, 12<<20, 4<<20); b.Close() })
		wg.Wait()
	})
	if shared2, _ := s.Stats(); shared2 != int64(len(src.b)) || shared > shared2 {
		t.Fatalf("shared reads %d, want the blob once (%d)", shared2, len(src.b))
	}
}

// The slowest consumer closing wakes one that waits for room.
func TestCloseWakesAWaitingConsumer(t *testing.T) {
	src := blob(t, 4<<20)
	s := New(src, int64(len(src.b)), 2, 1<<20)
	a, b := s.Reader(0), s.Reader(1)
	done := make(chan error, 1)
	go func() {
		_, err := a.ReadAt(make([]byte, 3<<20), 0) // needs b to move: it never reads
		done <- err
	}()
	select {
	case <-done:
		t.Fatal("read past the window while the other consumer stood at 0")
	case <-time.After(100 * time.Millisecond):
	}
	b.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the slowest consumer did not wake the waiting one")
	}
	if _, err := b.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v, want ErrClosed", err)
	}
}

// A source error is returned, and a later read works once the source does.
func TestSourceErrorIsReturnedNotKept(t *testing.T) {
	src := blob(t, 2<<20)
	s := New(src, int64(len(src.b)), 2, 1<<20)
	a := s.Reader(0)
	s.Reader(1).Close()
	within(t, 5*time.Second, func() {
		src.fail.Store(true)
		if _, err := a.ReadAt(make([]byte, 1024), 0); !errors.Is(err, errDisk) {
			t.Errorf("a failing source read gave %v, want the source's error", err)
		}
		src.fail.Store(false)
		p := make([]byte, 1024)
		if _, err := a.ReadAt(p, 0); err != nil || !bytes.Equal(p, src.b[:1024]) {
			t.Errorf("read after the source recovered: %v", err)
		}
	})
}

// A source error in the middle of the blob, while two consumers read it,
// reaches the one that filled; both read on once the source works again,
// and the blob is still read once.
func TestSourceErrorInTheMiddle(t *testing.T) {
	src := blob(t, 4<<20)
	s := New(src, int64(len(src.b)), 2, 1<<20)
	a, b := s.Reader(0), s.Reader(1)
	within(t, 5*time.Second, func() {
		for _, r := range []*Reader{a, b} {
			if _, err := r.ReadAt(make([]byte, 1<<20), 0); err != nil {
				t.Error(err)
				return
			}
		}
		src.fail.Store(true)
		p := make([]byte, 1<<20)
		n, err := a.ReadAt(p, 1<<20)
		if !errors.Is(err, errDisk) || n != 0 {
			t.Errorf("read while the source fails: %d bytes, %v; want 0 and the source's error", n, err)
		}
		src.fail.Store(false)
		for _, r := range []*Reader{a, b} {
			if _, err := r.ReadAt(p, 1<<20); err != nil || !bytes.Equal(p, src.b[1<<20:2<<20]) {
				t.Errorf("read after the source recovered: %v", err)
			}
		}
	})
	if shared, reread := s.Stats(); shared != 2<<20 || reread != 0 {
		t.Fatalf("shared %d, reread %d; want 2 MiB once", shared, reread)
	}
}

// io.ReaderAt's contract at the end of the blob.
func TestEOF(t *testing.T) {
	src := blob(t, 100<<10)
	s := New(src, int64(len(src.b)), 1, 64<<10)
	r := s.Reader(0)
	p := make([]byte, 10<<10)
	if n, err := r.ReadAt(p, 95<<10); n != 5<<10 || err != io.EOF {
		t.Fatalf("read across the end: %d, %v; want 5 KiB and EOF", n, err)
	}
	if n, err := r.ReadAt(p, 100<<10); n != 0 || err != io.EOF {
		t.Fatalf("read at the end: %d, %v", n, err)
	}
	if n, err := r.ReadAt(p[:5<<10], 95<<10); n != 5<<10 || err != nil {
		t.Fatalf("read up to the end: %d, %v", n, err)
	}
}

// Many consumers at random offsets and sizes, going back and jumping on,
// one closing early: every read gets the right bytes and nothing
// deadlocks.
func TestRandomReaders(t *testing.T) {
	src := blob(t, 6<<20)
	const n = 6
	s := New(src, int64(len(src.b)), n, 1<<20)
	within(t, 20*time.Second, func() {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r := s.Reader(i)
				defer r.Close()
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				off := int64(0)
				for off < int64(len(src.b)) {
					if i == 0 && off > 2<<20 {
						return // leaves early
					}
					switch rng.IntN(8) {
					case 0:
						off = max(0, off-int64(rng.IntN(2<<20))) // goes back
					case 1:
						off = min(int64(len(src.b))-1, off+int64(rng.IntN(1<<20))) // jumps on
					}
					p := make([]byte, 1+rng.IntN(512<<10))
					k, err := r.ReadAt(p, off)
					if err != nil && err != io.EOF {
						t.Error(err)
						return
					}
					if !bytes.Equal(p[:k], src.b[off:off+int64(k)]) {
						t.Errorf("consumer %d: other bytes at %d", i, off)
						return
					}
					off += int64(k)
				}
			})
		}
		wg.Wait()
	})
}

// A consumer closed before it read does not hold the window back: the
// other reads the whole blob through a window a quarter of its size.
func TestClosedWithoutReading(t *testing.T) {
	src := blob(t, 4<<20)
	s := New(src, int64(len(src.b)), 3, 1<<20)
	a, b := s.Reader(0), s.Reader(1)
	b.Close()
	s.Reader(2).Close()
	p := make([]byte, len(src.b))
	within(t, 5*time.Second, func() {
		if _, err := a.ReadAt(p, 0); err != nil {
			t.Error(err)
		}
	})
	if !bytes.Equal(p, src.b) {
		t.Fatal("other bytes")
	}
	if shared, reread := s.Stats(); shared != int64(len(src.b)) || reread != 0 {
		t.Fatalf("shared %d, reread %d; want the blob once", shared, reread)
	}
}

// A consumer that went back before the window and then jumps on to its
// end does not wait for itself (its position is where it reads now, not
// where its read before the window ended).
func TestGoingBackThenOnToTheEndOfTheWindow(t *testing.T) {
	for _, n := range []int{1, 2} {
		src := blob(t, 4<<20)
		s := New(src, int64(len(src.b)), n, 1<<20)
		rs := make([]*Reader, n)
		for i := range rs {
			rs[i] = s.Reader(i)
		}
		within(t, 5*time.Second, func() {
			for _, off := range []int64{0, 1 << 20} {
				for _, r := range rs {
					if _, err := r.ReadAt(make([]byte, 1<<20), off); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if s.lo != 1<<20 || s.hi != 2<<20 {
				t.Errorf("window [%d, %d), want full at [1 MiB, 2 MiB)", s.lo, s.hi)
				return
			}
			if _, err := rs[0].ReadAt(make([]byte, 100), 0); err != nil { // before the window
				t.Error(err)
				return
			}
			p := make([]byte, 100)
			if _, err := rs[0].ReadAt(p, 2<<20); err != nil || !bytes.Equal(p, src.b[2<<20:2<<20+100]) {
				t.Errorf("read at the end of the window: %v", err)
			}
		})
	}
}

// A read outside the window that moves the slowest consumer on wakes the
// consumer waiting for the room it freed.
func TestDirectReadWakesAWaitingConsumer(t *testing.T) {
	src := blob(t, 4<<20)
	s := New(src, int64(len(src.b)), 2, 1<<20)
	a, b := s.Reader(0), s.Reader(1)
	done := make(chan error, 1)
	p := make([]byte, 2<<20)
	go func() {
		_, err := b.ReadAt(p, 0) // waits for a, which stands at 0
		done <- err
	}()
	select {
	case <-done:
		t.Fatal("read past the window while the other consumer stood at 0")
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := a.ReadAt(make([]byte, 1<<20), 3<<20); err != nil { // past the window: now at 4 MiB
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || !bytes.Equal(p, src.b[:2<<20]) {
			t.Fatalf("the waiting read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read past the window by the slowest consumer did not wake the waiting one")
	}
	if _, reread := s.Stats(); reread != 1<<20 {
		t.Fatalf("reread %d, want the 1 MiB read past the window", reread)
	}
}

// Closing a consumer whose read waits for room ends that read with
// ErrClosed.
func TestCloseDuringARead(t *testing.T) {
	src := blob(t, 4<<20)
	s := New(src, int64(len(src.b)), 2, 1<<20)
	a := s.Reader(0)
	_ = s.Reader(1) // never reads: holds the window at 0
	done := make(chan error, 1)
	go func() {
		_, err := a.ReadAt(make([]byte, 2<<20), 0)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	a.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("the read of a consumer closed meanwhile: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing a consumer did not end its waiting read")
	}
}

// After Close every read returns ErrClosed, at the end of the blob too;
// Close is idempotent.
func TestReadAfterClose(t *testing.T) {
	src := blob(t, 100<<10)
	s := New(src, int64(len(src.b)), 2, 0)
	r := s.Reader(0)
	if _, err := r.ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	for _, off := range []int64{0, 50 << 10, 100 << 10, 200 << 10, -1} {
		if n, err := r.ReadAt(make([]byte, 10), off); n != 0 || !errors.Is(err, ErrClosed) {
			t.Errorf("read at %d after Close: %d, %v; want ErrClosed", off, n, err)
		}
	}
}

// A source shorter than the size given reads as an error, not as the end
// of the blob (which would let a copy end early without one).
func TestShortSource(t *testing.T) {
	src := blob(t, 100<<10)
	s := New(src, 200<<10, 2, 1<<20)
	a, b := s.Reader(0), s.Reader(1)
	b.Close()
	if _, err := io.Copy(io.Discard, io.NewSectionReader(a, 0, 200<<10)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("copy of a short source: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := a.ReadAt(make([]byte, 10<<10), 150<<10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read past the source's end, before the size: %v, want io.ErrUnexpectedEOF", err)
	}
}

// The window is taken at the first read, not before, and given back when
// the last consumer closes.
func TestWindowTakenLateGivenBack(t *testing.T) {
	src := blob(t, 4<<20)
	s := New(src, int64(len(src.b)), 2, 1<<20)
	a, b := s.Reader(0), s.Reader(1)
	if s.buf != nil {
		t.Fatal("window taken before any read")
	}
	if _, err := a.ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	if int64(len(s.buf)) != 1<<20 {
		t.Fatalf("window of %d bytes, want 1 MiB", len(s.buf))
	}
	a.Close()
	if s.buf == nil {
		t.Fatal("window given back while a consumer is open")
	}
	b.Close()
	if s.buf != nil {
		t.Fatal("window kept after every consumer closed")
	}
}

// Blobs smaller than the smallest window: the window is the blob's size;
// an empty blob is at its end at once.
func TestSmallBlobs(t *testing.T) {
	for _, size := range []int{0, 1, 1000, 64 << 10, 64<<10 + 1} {
		src := blob(t, size)
		s := New(src, int64(size), 2, 8<<20)
		if want := min(int64(size), 8<<20); s.window != want {
			t.Fatalf("size %d: window %d, want %d", size, s.window, want)
		}
		a, b := s.Reader(0), s.Reader(1)
		for _, r := range []*Reader{a, b} {
			p := make([]byte, size+10)
			if n, err := r.ReadAt(p, 0); n != size || err != io.EOF || !bytes.Equal(p[:n], src.b) {
				t.Fatalf("size %d: read %d bytes, %v; want all and EOF", size, n, err)
			}
		}
		if shared, reread := s.Stats(); shared != int64(size) || reread != 0 {
			t.Fatalf("size %d: shared %d, reread %d", size, shared, reread)
		}
		a.Close()
		b.Close()
	}
}

// Each consumer's Reader is taken once.
func TestReaderTakenTwicePanics(t *testing.T) {
	s := New(blob(t, 10), 10, 2, 0)
	s.Reader(1)
	defer func() {
		if recover() == nil {
			t.Fatal("a second Reader(1) did not panic")
		}
	}()
	s.Reader(1)
}
