package imageservice

import (
	"context"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// earlyPush sends compressed layers to a push's destinations as soon as
// each is compressed, while the others still are (WithCompression): the
// conversion and the uploads overlap instead of following each other.
// Each blob goes through the same per-destination steps as in the graph
// push (the destination asked first unless the repository is new, a
// mount where the labels offer one, then the upload read once for every
// destination), so nothing is written that the destination has. Its tag
// check asks only whether the repository exists: the root is not known
// until every layer is compressed, and a tag cannot already name an image
// whose layers the registry lacks. What it sends is claimed in each
// destination's record, so the graph push that follows finds it done;
// a failure here is left to that graph push, which sends the blob again.
type earlyPush struct {
	ctx    context.Context
	cancel context.CancelFunc
	gp     *graphPush
	runs   []*legRun
	lim    *limiter
	wg     sync.WaitGroup
	sent   *sentEarly
	// asked starts the tag checks with the first send: a push whose
	// layers were all compressed before sends none.
	asked sync.Once
}

// startEarly prepares the early sends to legs' destinations.
func (s *Service) startEarly(ctx context.Context, legs []*leg, o *transferOptions) *earlyPush {
	ctx, cancel := context.WithCancel(ctx)
	e := &earlyPush{ctx: ctx, cancel: cancel, sent: &sentEarly{m: map[*destination]map[digest.Digest]bool{}}}
	early := make([]*leg, len(legs))
	for i, l := range legs {
		early[i] = &leg{dest: l.dest, tag: l.tag, index: l.index, label: l.label}
	}
	e.gp = &graphPush{legs: early, cs: s.content, o: o}
	e.lim = newLimiter(o, early)
	for _, l := range early {
		lctx, lcancel := context.WithCancelCause(ctx)
		e.runs = append(e.runs, &legRun{leg: l, ctx: lctx, cancel: lcancel})
	}
	return e
}

// sender is what hands a compressed layer to e (nil for no e).
func (e *earlyPush) sender() func(ocispec.Descriptor) {
	if e == nil {
		return nil
	}
	return e.send
}

// send starts sending desc, under the bound of transfers in flight.
func (e *earlyPush) send(desc ocispec.Descriptor) {
	e.asked.Do(func() {
		for _, l := range e.gp.legs {
			l.check = startTagCheck(e.ctx, l.dest, l.tag, ocispec.Descriptor{})
		}
	})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		release, err := e.lim.acquire(e.ctx, desc.Size, func() {})
		if err != nil {
			return
		}
		// Recorded before the send, so the graph push that waits for it
		// never shows it as found there; taken back where it failed
		// (the graph push then sends it, with its own events).
		for _, r := range e.runs {
			if r.failed() == nil {
				e.sent.add(r.dest, desc.Digest)
			}
		}
		n := &node{desc: desc, present: true}
		err = e.gp.send(e.ctx, e.runs, n, false, e.lim)
		release(err)
		for _, r := range e.runs {
			if r.failed() != nil {
				e.sent.remove(r.dest, desc.Digest)
			}
		}
	}()
}

// stop cancels the sends still going (the push failed before its graph
// push).
func (e *earlyPush) stop() {
	if e != nil {
		e.cancel()
	}
}

// wait waits for every send to end and releases e.
func (e *earlyPush) wait() {
	if e == nil {
		return
	}
	e.wg.Wait()
	e.cancel()
	for _, r := range e.runs {
		r.cancel(nil)
	}
}

// sentSet is the record of what e sent (nil for no e).
func (e *earlyPush) sentSet() *sentEarly {
	if e == nil {
		return nil
	}
	return e.sent
}

// sentEarly records, per destination, the blobs sent early.
type sentEarly struct {
	mu sync.Mutex
	m  map[*destination]map[digest.Digest]bool
}

func (s *sentEarly) add(d *destination, dg digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[d] == nil {
		s.m[d] = map[digest.Digest]bool{}
	}
	s.m[d][dg] = true
}

func (s *sentEarly) remove(d *destination, dg digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m[d], dg)
}

// has reports whether dg was sent early to d (false for no record).
func (s *sentEarly) has(d *destination, dg digest.Digest) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[d][dg]
}
