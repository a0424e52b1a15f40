package imageservice

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/mount"
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

	// Cross-repository mounts into registry/path and ctrpush's own
	// uploads (blobs nil: containerd's pusher does everything).
	blobs    *blobClient
	store    content.Store    // the real store, for dropping stale sources
	provider content.Provider // where blob bytes come from
	retry    retrier
	root     digest.Digest // the pushed root: PUT by tag
	tag      string
	registry string
	path     string
	// newRepository: the registry said the destination repository does
	// not exist, so no blob can be there: no HEAD before each upload.
	newRepository bool
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

// errStopped is what progress shows for a transfer that ended because the
// push was cancelled: by the caller, or because another transfer failed
// (whose own Failed event carries that error).
var errStopped = fmt.Errorf("stopped: %w", context.Canceled)

// failure is the error a Failed event shows for err.
func failure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errStopped
	}
	return err
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
	if p.blobs != nil && !images.IsManifestType(desc.MediaType) && !images.IsIndexType(desc.MediaType) {
		done, err := p.tryMount(ctx, desc)
		if done {
			p.reportExisting(ctx, desc, first)
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		if err := p.upload(ctx, desc); err != nil {
			p.emit(desc, progress.Failed, 0, failure(ctx, err))
			return nil, err
		}
		p.emit(desc, progress.Pushed, desc.Size, nil)
		return nil, fmt.Errorf("content %s pushed: %w", desc.Digest, errdefs.ErrAlreadyExists)
	}
	if p.blobs != nil {
		exists, err := p.putManifest(ctx, desc)
		if err != nil {
			p.emit(desc, progress.Failed, 0, failure(ctx, err))
			return nil, err
		}
		if exists {
			p.reportExisting(ctx, desc, first)
		} else {
			p.emit(desc, progress.Pushed, desc.Size, nil)
		}
		return nil, fmt.Errorf("content %s pushed: %w", desc.Digest, errdefs.ErrAlreadyExists)
	}
	w, err := p.Pusher.Push(ctx, desc)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			p.reportExisting(ctx, desc, first)
			return nil, err
		}
		p.emit(desc, progress.Failed, 0, failure(ctx, err))
		return nil, err
	}
	p.emit(desc, progress.Pushing, 0, nil)
	return w, nil
}

// upload sends blob desc unless the destination has it, retrying
// transient faults with a new upload session each time, the bytes read
// anew from the store.
func (p *trackingPusher) upload(ctx context.Context, desc ocispec.Descriptor) error {
	ref := remotes.MakeRefKey(ctx, desc)
	if p.newRepository {
		// nothing to ask
	} else if ok, err := p.blobs.exists(ctx, desc.Digest); err == nil && ok {
		p.tracker.SetStatus(ref, docker.Status{Committed: true, PushStatus: docker.PushStatus{Exists: true},
			Status: content.Status{Ref: ref, Total: desc.Size, Offset: desc.Size}})
		p.emit(desc, progress.Exists, desc.Size, nil)
		return nil
	} else if ctx.Err() != nil {
		return ctx.Err()
	}
	ra, err := p.provider.ReaderAt(ctx, desc)
	if err != nil {
		return err
	}
	defer ra.Close()
	p.emit(desc, progress.Pushing, 0, nil)
	r := p.retry
	r.onRetry = func(wait time.Duration, err error) {
		log.G(ctx).WithError(err).WithField("digest", desc.Digest).Debugf("retrying in %s", wait)
		p.sink.Emit(progress.Event{Transfer: &progress.Transfer{ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(),
			Kind: kindOf(desc.MediaType), State: progress.Retrying, RetryIn: wait, Total: desc.Size}})
	}
	err = r.do(ctx, func() error {
		return p.blobs.uploadBlob(ctx, desc, ra, func(n int64) { p.emit(desc, progress.Pushing, n, nil) })
	})
	if err != nil {
		return err
	}
	p.tracker.SetStatus(ref, docker.Status{Committed: true, Status: content.Status{Ref: ref, Total: desc.Size, Offset: desc.Size}})
	return nil
}

// putManifest PUTs manifest or index desc — by tag when it is the pushed
// root (so the tag moves last), by digest otherwise, unless the registry
// already has that digest. exists reports it was already there.
func (p *trackingPusher) putManifest(ctx context.Context, desc ocispec.Descriptor) (exists bool, err error) {
	ref := desc.Digest.String()
	if desc.Digest == p.root && p.tag != "" {
		ref = p.tag
	} else if have, err := p.blobs.manifestDigest(ctx, ref, desc.MediaType); err == nil && have == desc.Digest {
		return true, nil
	}
	b, err := content.ReadBlob(ctx, p.provider, desc)
	if err != nil {
		return false, err
	}
	p.emit(desc, progress.Pushing, 0, nil)
	r := p.retry
	r.onRetry = func(wait time.Duration, err error) {
		p.sink.Emit(progress.Event{Transfer: &progress.Transfer{ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(),
			Kind: kindOf(desc.MediaType), State: progress.Retrying, RetryIn: wait, Total: desc.Size}})
	}
	if err := r.do(ctx, func() error { return p.blobs.putManifest(ctx, desc, b, ref) }); err != nil {
		return false, err
	}
	p.emit(desc, progress.Pushing, desc.Size, nil)
	return false, nil
}

// reportExisting emits "Mounted from" or "Layer already exists" for a blob
// the pusher did not have to upload.
func (p *trackingPusher) reportExisting(ctx context.Context, desc ocispec.Descriptor, first bool) {
	if !first {
		return
	}
	if st, err := p.tracker.GetStatus(remotes.MakeRefKey(ctx, desc)); err == nil && st.MountedFrom != "" {
		p.sink.Emit(progress.Event{Transfer: &progress.Transfer{
			ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(), Kind: kindOf(desc.MediaType),
			State: progress.Mounted, Current: desc.Size, Total: desc.Size, From: st.MountedFrom,
		}})
		return
	}
	p.emit(desc, progress.Exists, desc.Size, nil)
}

// tryMount makes blob desc present in the destination without uploading
// it, when its source labels name repositories of the same registry: a
// mount from up to
// mount.MaxCandidates repositories, longest common path first. A mount
// answered 401/403/202 or failing otherwise moves on to the next candidate;
// a 202 (the source lacks the blob) also drops that repository from the
// blob's label. When the labels name the destination itself, a HEAD
// checks it is there first. done reports the blob is present (err is then
// ErrAlreadyExists); otherwise the caller uploads it.
func (p *trackingPusher) tryMount(ctx context.Context, desc ocispec.Descriptor) (done bool, err error) {
	sources := mount.SourceLabels(desc.Annotations)
	candidates := mount.Candidates(sources, p.registry, p.path)
	if len(candidates) == 0 && !mount.Listed(sources, p.registry, p.path) {
		return false, nil
	}
	ref := remotes.MakeRefKey(ctx, desc)
	present := func(from string) (bool, error) {
		p.tracker.SetStatus(ref, docker.Status{
			Committed:  true,
			PushStatus: docker.PushStatus{MountedFrom: from, Exists: from == ""},
			Status:     content.Status{Ref: ref, Total: desc.Size, Offset: desc.Size},
		})
		return true, fmt.Errorf("content %s on remote: %w", desc.Digest, errdefs.ErrAlreadyExists)
	}
	lg := log.G(ctx).WithField("digest", desc.Digest)
	// A HEAD first only when the labels say the destination has the blob
	// (or name no other repository): otherwise mount at once — a mount of a
	// blob the destination already has succeeds too, and a HEAD before every
	// mount would double the requests.
	if len(candidates) == 0 || mount.Listed(sources, p.registry, p.path) {
		if ok, err := p.blobs.exists(ctx, desc.Digest); err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			lg.WithError(err).Debug("blob existence check failed")
		} else if ok {
			return present("")
		}
	}
	for _, from := range candidates {
		if !p.mountable(desc, from) {
			continue
		}
		outcome, err := p.blobs.mount(ctx, desc.Digest, from)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		switch {
		case err != nil:
			lg.WithError(err).WithField("from", from).Debug("mount failed")
		case outcome == mounted:
			return present(from)
		case outcome == notThere:
			lg.WithField("from", from).Debug("mount source does not have the blob; dropping it from the label")
			if err := mount.DropSource(context.WithoutCancel(ctx), p.store, desc.Digest, p.registry, from); err != nil {
				lg.WithError(err).Debug("drop stale mount source")
			}
		default:
			lg.WithField("from", from).Debug("mount refused")
		}
	}
	return false, nil
}

// mountable checks mount.CanBeMounted for desc from repository from of
// the destination registry.
func (p *trackingPusher) mountable(desc ocispec.Descriptor, from string) bool {
	target, err1 := reference.ParseNormalizedNamed(p.registry + "/" + p.path)
	source, err2 := reference.ParseNormalizedNamed(p.registry + "/" + from)
	return err1 == nil && err2 == nil && mount.CanBeMounted(desc.MediaType, target, source)
}

// withoutSources returns desc without distribution-source annotations.
func withoutSources(desc ocispec.Descriptor) ocispec.Descriptor {
	if mount.SourceLabels(desc.Annotations) == nil {
		return desc
	}
	a := map[string]string{}
	for k, v := range desc.Annotations {
		if _, ok := mount.ParseKey(k); !ok {
			a[k] = v
		}
	}
	desc.Annotations = a
	return desc
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
		w.p.emit(w.desc, progress.Failed, w.n, failure(ctx, err))
	}
	return err
}

// Close ends the writer; an upload closed before Commit failed.
func (w *trackingWriter) Close() error {
	w.f.finish(fmt.Errorf("upload of %s closed before commit", w.desc.Digest))
	return w.Writer.Close()
}
