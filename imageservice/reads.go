package imageservice

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/fanout"
)

// fanoutWindow bounds the bytes of one blob held in memory while several
// destinations upload it: the fastest upload is at most this far ahead of
// the slowest (one default PATCH chunk), and an upload that resumes from
// an offset still in the window reads nothing from the store again.
const fanoutWindow = 8 << 20

// blobReads is one blob's bytes for the legs of a graph push that upload
// it at once: each leg says whether it uploads (join) or not (decline);
// once every leg has said, the blob is opened once and, for several
// uploads, shared through a window (internal/fanout), so the store reads
// it once for all of them. The room among the uploads to a destination
// close by is taken then too, for every joined leg in leg order, so two
// blobs never wait on each other's room.
type blobReads struct {
	ctx  context.Context // the node's: the room is taken under it
	cs   content.Store
	desc ocispec.Descriptor
	lim  *limiter
	// single: one leg, whose failure stops the push (the room marks the
	// limiter failed); with several, a leg's failure is its own.
	single bool

	mu      sync.Mutex
	pending int
	said    map[*leg]bool
	joined  []*leg
	ready   chan struct{}
	// Set when ready closes.
	err      error
	readers  map[*leg]io.ReaderAt
	releases map[*leg]func(error)
}

func newBlobReads(ctx context.Context, cs content.Store, desc ocispec.Descriptor, lim *limiter, legs int, single bool) *blobReads {
	return &blobReads{ctx: ctx, cs: cs, desc: desc, lim: lim, single: single, pending: legs, said: map[*leg]bool{}, ready: make(chan struct{})}
}

// say records l's answer; the last to answer opens the blob.
func (b *blobReads) say(l *leg, uploads bool) bool {
	b.mu.Lock()
	if b.said[l] {
		b.mu.Unlock()
		return false
	}
	b.said[l] = true
	if uploads {
		b.joined = append(b.joined, l)
	}
	b.pending--
	last := b.pending == 0
	b.mu.Unlock()
	if last {
		b.open()
	}
	return true
}

// decline says l does not upload the blob; nothing when l has said already.
func (b *blobReads) decline(l *leg) {
	if b != nil {
		b.say(l, false)
	}
}

// join says l uploads the blob and waits for the others to say. It returns
// l's reader of the blob and the release of its room, to call with the
// upload's error once the upload ended.
func (b *blobReads) join(ctx context.Context, l *leg) (io.ReaderAt, func(error), error) {
	b.say(l, true)
	select {
	case <-b.ready:
	case <-ctx.Done():
		// The reader made for l must not hold the others back.
		go func() {
			<-b.ready
			if b.err == nil {
				b.release(l, nil)
			}
		}()
		return nil, nil, ctx.Err()
	}
	if b.err != nil {
		return nil, nil, b.err
	}
	return b.readers[l], func(err error) { b.release(l, err) }, nil
}

func (b *blobReads) release(l *leg, err error) {
	if c, ok := b.readers[l].(io.Closer); ok {
		c.Close()
	}
	if !b.single {
		err = nil // one destination's failure is its own
	}
	b.releases[l](err)
}

// open opens the blob once for the joined legs and takes their room.
func (b *blobReads) open() {
	defer close(b.ready)
	if len(b.joined) == 0 {
		return
	}
	slices.SortFunc(b.joined, func(x, y *leg) int { return x.index - y.index })
	ra, err := b.cs.ReaderAt(b.ctx, b.desc)
	if err != nil {
		if errdefs.IsNotFound(err) {
			b.err = &localMissingError{desc: b.desc, err: err}
		} else {
			b.err = fmt.Errorf("read %s from the store: %w", b.desc.Digest, err)
		}
		return
	}
	b.releases = map[*leg]func(error){}
	for _, l := range b.joined {
		rel, err := b.lim.acquireUpload(b.ctx, l.dest)
		if err != nil {
			for _, r := range b.releases {
				r(nil)
			}
			ra.Close()
			b.err = err
			return
		}
		b.releases[l] = rel
	}
	b.readers = map[*leg]io.ReaderAt{}
	if len(b.joined) == 1 {
		b.readers[b.joined[0]] = &closingReader{ReaderAt: ra, close: ra.Close}
		return
	}
	src := fanout.New(ra, b.desc.Size, len(b.joined), fanoutWindow)
	var left sync.WaitGroup
	left.Add(len(b.joined))
	go func() { left.Wait(); ra.Close() }()
	for i, l := range b.joined {
		r := src.Reader(i)
		var once sync.Once
		b.readers[l] = &closingReader{ReaderAt: r, close: func() error {
			once.Do(func() { r.Close(); left.Done() })
			return nil
		}}
	}
}

// closingReader is a ReaderAt with what closes it.
type closingReader struct {
	io.ReaderAt
	close func() error
}

func (c *closingReader) Close() error { return c.close() }
