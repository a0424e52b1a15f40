package imageservice

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/progress"
)

func namespaceOf(ctx context.Context) string {
	ns, _ := namespaces.Namespace(ctx)
	return ns
}

func kindOf(mediaType string) progress.Kind {
	switch {
	case images.IsIndexType(mediaType):
		return progress.KindIndex
	case images.IsManifestType(mediaType):
		return progress.KindManifest
	case images.IsConfigType(mediaType):
		return progress.KindConfig
	}
	return progress.KindLayer
}

// trackingPusher wraps containerd's pusher for one destination:
//   - each digest is uploaded once: a second caller for a digest in flight
//     (a layer shared by two manifests) waits for the first and reports it
//     present, instead of uploading it again as containerd's pusher would;
//   - its calls become progress events, so the push code stays free of
//     rendering.
type trackingPusher struct {
	remotes.Pusher
	sink     progress.Sink
	tracker  docker.StatusTracker
	mu       sync.Mutex
	seen     map[digest.Digest]bool
	inflight map[digest.Digest]*inflight
}

// inflight is one digest's upload; done closes when it ends, err says how.
type inflight struct {
	done chan struct{}
	err  error
	once sync.Once
}

func (f *inflight) finish(err error) {
	f.once.Do(func() {
		f.err = err
		close(f.done)
	})
}

// claim returns the upload in flight for d, or registers a new one owned by
// the caller (owner true).
func (p *trackingPusher) claim(d digest.Digest) (f *inflight, owner bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight == nil {
		p.inflight = map[digest.Digest]*inflight{}
	}
	if f, ok := p.inflight[d]; ok {
		select {
		case <-f.done:
			if f.err == nil || errdefs.IsAlreadyExists(f.err) {
				return f, false
			}
			// the earlier attempt failed: this caller tries again
		default:
			return f, false
		}
	}
	f = &inflight{done: make(chan struct{})}
	p.inflight[d] = f
	return f, true
}

func (p *trackingPusher) emit(desc ocispec.Descriptor, state progress.State, current int64, err error) {
	p.sink.Emit(progress.Event{Transfer: &progress.Transfer{
		ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(), Kind: kindOf(desc.MediaType),
		State: state, Current: current, Total: desc.Size, Err: err,
	}})
}

func (p *trackingPusher) Push(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	for {
		f, owner := p.claim(desc.Digest)
		if owner {
			w, err := p.push(ctx, desc)
			if err != nil {
				f.finish(err)
				return nil, err
			}
			return &trackingWriter{Writer: w, p: p, desc: desc, f: f}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.done:
		}
		if f.err == nil || errdefs.IsAlreadyExists(f.err) {
			return nil, fmt.Errorf("content %s pushed by another caller: %w", desc.Digest, errdefs.ErrAlreadyExists)
		}
	}
}

func (p *trackingPusher) push(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	p.mu.Lock()
	if p.seen == nil {
		p.seen = map[digest.Digest]bool{}
	}
	first := !p.seen[desc.Digest]
	p.seen[desc.Digest] = true
	p.mu.Unlock()
	if first {
		p.emit(desc, progress.Preparing, 0, nil)
	}
	w, err := p.Pusher.Push(ctx, desc)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			if first {
				if st, serr := p.tracker.GetStatus(remotes.MakeRefKey(ctx, desc)); serr == nil && st.MountedFrom != "" {
					p.sink.Emit(progress.Event{Transfer: &progress.Transfer{
						ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(), Kind: kindOf(desc.MediaType),
						State: progress.Mounted, Current: desc.Size, Total: desc.Size, From: st.MountedFrom,
					}})
				} else {
					p.emit(desc, progress.Exists, desc.Size, nil)
				}
			}
			return nil, err
		}
		p.emit(desc, progress.Failed, 0, err)
		return nil, err
	}
	p.emit(desc, progress.Pushing, 0, nil)
	return w, nil
}

type trackingWriter struct {
	content.Writer
	p    *trackingPusher
	desc ocispec.Descriptor
	f    *inflight
	n    int64
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	n, err := w.Writer.Write(b)
	w.n += int64(n)
	w.p.emit(w.desc, progress.Pushing, w.n, nil)
	return n, err
}

func (w *trackingWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	err := w.Writer.Commit(ctx, size, expected, opts...)
	w.f.finish(err)
	switch {
	case err == nil, errdefs.IsAlreadyExists(err):
		w.p.emit(w.desc, progress.Pushed, w.desc.Size, nil)
	default:
		w.p.emit(w.desc, progress.Failed, w.n, err)
	}
	return err
}

// Close ends the writer; an upload closed before Commit failed.
func (w *trackingWriter) Close() error {
	w.f.finish(fmt.Errorf("upload of %s closed before commit", w.desc.Digest))
	return w.Writer.Close()
}
