package imageservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"

	"github.com/ctrpush/ctrpush/internal/registry"
	"github.com/ctrpush/ctrpush/mount"
	"github.com/ctrpush/ctrpush/progress"
)

// pullConcurrencyNear is how many blobs a pull fetches at once from a
// registry close by (the manifest resolved within nearRoundTrip) unless
// WithMaxConcurrentUploads says otherwise; across a link it fetches
// DefaultMaxConcurrentUploads at once, under DefaultMaxBytesInFlight.
const pullConcurrencyNear = 8

// PullResult is one pulled image.
type PullResult struct {
	// Name is the local image name ("host/repo:tag").
	Name string
	// Descriptor is the image's target.
	Descriptor ocispec.Descriptor
	// Platforms whose layers were fetched.
	Platforms []ocispec.Platform
	// Referrers is how many referrers were fetched and linked to the
	// image's manifests (WithReferrers).
	Referrers int
}

// Pull fetches ref into the store and creates (or updates) the image. It
// fetches the index and every manifest and config in it (they are small),
// but layers only for the requested platforms (default: this host's;
// WithAllPlatforms: all), so a later push of the whole index to another
// repository of the same registry can mount the rest. Content already in
// the store is not fetched again; everything fetched is labelled with its
// distribution source. WithDestination is refused; WithMaxConcurrentUploads
// bounds the downloads in flight (default: 8 at a time).
func (s *Service) Pull(ctx context.Context, ref string, opts ...TransferOption) (PullResult, error) {
	o, err := newTransferOptions(opts)
	if err != nil {
		return PullResult{}, err
	}
	if len(o.dests) > 0 {
		return PullResult{}, fmt.Errorf("pull has no destination: %w", errdefs.ErrInvalidArgument)
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return PullResult{}, &ReferenceError{What: "reference", Value: ref, Err: err}
	}
	named = reference.TagNameOnly(named)
	name := named.String()
	ctx = s.withNamespace(ctx)

	var matcher platforms.MatchComparer
	switch {
	case o.all:
		matcher = platforms.All
	case len(o.platforms) > 0:
		matcher = platforms.Any(o.platforms...)
	default:
		matcher = platforms.Only(s.host)
	}

	res := PullResult{Name: name}
	err = s.withLease(ctx, func(ctx context.Context) (err error) {
		ingests := newOwnedIngests(s.content) // a failed pull removes its partial ingests
		defer func() {
			if err != nil {
				ingests.abortStarted(ctx)
			}
		}()
		repo, err := registry.NewRepository(o.hosts, reference.Domain(named), reference.Path(named), registry.ForPull, o.retry)
		if err != nil {
			return fmt.Errorf("pull %s: %w", name, err)
		}
		var ref string
		if d, ok := named.(reference.Digested); ok {
			ref = d.Digest().String()
		} else if t, ok := named.(reference.Tagged); ok {
			ref = t.Tag()
		}
		// One GET: the root's bytes come with its digest (HEAD, then
		// GET, would take two round trips).
		resolveStart := time.Now()
		desc, rootBody, err := repo.ResolveBody(ctx, ref)
		resolved := time.Since(resolveStart)
		if err != nil {
			if registry.Unreachable(err) {
				return fmt.Errorf("pull %s: registry %s is unreachable; check that it is running and the address is right: %w", name, reference.Domain(named), err)
			}
			return fmt.Errorf("pull %s: %w", name, err)
		}
		if d, ok := named.(reference.Digested); ok && d.Digest() != desc.Digest {
			return fmt.Errorf("pull %s: the registry answered %s: %w", name, desc.Digest, errdefs.ErrDataLoss)
		}
		fetchBlob := func(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
			if d.Digest == desc.Digest && rootBody != nil {
				return io.NopCloser(bytes.NewReader(rootBody)), nil
			}
			return repo.Fetch(ctx, d)
		}
		o.sink.Emit(progress.Event{Message: fmt.Sprintf("Pulling %s", name)})
		// The distribution-source labels go in one batch after the
		// fetch (one metadata commit on the embedded store, not one per
		// blob beside each blob's own two).
		var fetched fetchedSet
		labeler := images.HandlerFunc(fetched.record)
		defer func() {
			if err != nil {
				return
			}
			// As a push's write-back: a label not written costs a later
			// push a mount, not this pull.
			if lerr := s.labelSources(ctx, fetched.digests(), repo); lerr != nil {
				log.G(ctx).WithError(lerr).Warn("could not record the pulled repository in the distribution-source labels")
			}
		}()
		sel := &layerSelector{cs: s.content, matcher: matcher, wanted: map[digest.Digest]bool{desc.Digest: true}, sink: o.sink}
		maxBytes := o.maxBytes
		if o.countGiven {
			maxBytes = math.MaxInt64 // the caller's count bounds alone, as for a push
		}
		fetch := remotes.FetchHandler(s.groupCommits(ingests), &trackingFetcher{fetch: fetchBlob, sink: o.sink, bytes: semaphore.NewWeighted(maxBytes), maxBytes: maxBytes})
		handler := images.Handlers(
			announceExisting(s.content, o.sink),
			fetch,
			labeler,
			images.SetChildrenLabels(s.content, images.HandlerFunc(sel.children)),
		)
		// As the push: many at once across a link (their round trips,
		// not the bandwidth, bound small blobs), a few from a registry
		// close by (its own work bounds the pull), and the bytes in
		// flight bounded either way (trackingFetcher).
		n := int64(o.maxUploads)
		if !o.countGiven {
			n = DefaultMaxConcurrentUploads
			if resolved < nearRoundTrip {
				n = pullConcurrencyNear
			}
		}
		log.G(ctx).WithField("resolved", resolved).WithField("concurrency", n).Debug("pull concurrency")
		limiter := semaphore.NewWeighted(n)
		if err := images.Dispatch(ctx, handler, limiter, desc); err != nil {
			return fmt.Errorf("pull %s: %w", name, err)
		}
		if images.IsIndexType(desc.MediaType) && len(sel.fetched) == 0 {
			var wanted []ocispec.Platform
			wanted = append(wanted, o.platforms...)
			if len(wanted) == 0 && !o.all {
				wanted = []ocispec.Platform{s.host}
			}
			return &PlatformNotFoundError{Image: name, Wanted: wanted, Missing: sel.listed}
		}
		if err := s.putImage(ctx, images.Image{Name: name, Target: desc}); err != nil {
			return err
		}
		if err := s.dropDangling(ctx, desc.Digest); err != nil {
			return err
		}
		res.Descriptor = desc
		res.Platforms = sel.fetched
		if o.referrers {
			tree := func(ctx context.Context, children images.HandlerFunc, d ocispec.Descriptor) error {
				h := images.Handlers(announceExisting(s.content, o.sink), fetch, labeler, images.SetChildrenLabels(s.content, children))
				return images.Dispatch(ctx, h, limiter, d)
			}
			n, err := s.pullReferrers(ctx, repo, desc, &o, tree)
			if err != nil {
				return fmt.Errorf("pull %s: referrers: %w", name, err)
			}
			res.Referrers = n
			o.sink.Emit(progress.Event{Message: fmt.Sprintf("%d referrer(s) of %s pulled", n, name)})
		}
		o.sink.Emit(progress.Event{Result: &progress.Result{Repository: named.Name(), Tag: name, Digest: desc.Digest.String(), Size: desc.Size}})
		return nil
	})
	return res, err
}

// layerSelector returns every child of an index and every config, but the
// layers of a manifest only when its platform is wanted.
type layerSelector struct {
	cs      content.Store
	matcher platforms.MatchComparer
	mu      sync.Mutex
	wanted  map[digest.Digest]bool
	fetched []ocispec.Platform
	listed  []ocispec.Platform
	// sink hears of each layer to fetch as soon as it is known (Waiting),
	// once (waiting).
	sink    progress.Sink
	waiting map[digest.Digest]bool
}

func (l *layerSelector) children(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	switch {
	case images.IsIndexType(desc.MediaType):
		b, err := content.ReadBlob(ctx, l.cs, desc)
		if err != nil {
			return nil, err
		}
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("decode index %s: %w", desc.Digest, err)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, m := range idx.Manifests {
			switch {
			case m.Annotations[annotationReferenceType] == attestationManifestType:
				// an attestation follows the manifest it describes
				l.wanted[m.Digest] = l.wanted[digest.Digest(m.Annotations["vnd.docker.reference.digest"])]
			case m.Platform == nil || images.IsIndexType(m.MediaType):
				l.wanted[m.Digest] = true
			default:
				p := platforms.Normalize(*m.Platform)
				l.listed = append(l.listed, p)
				if l.matcher.Match(p) {
					l.wanted[m.Digest] = true
					l.fetched = append(l.fetched, p)
				}
			}
		}
		return idx.Manifests, nil
	case images.IsManifestType(desc.MediaType):
		b, err := content.ReadBlob(ctx, l.cs, desc)
		if err != nil {
			return nil, err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("decode manifest %s: %w", desc.Digest, err)
		}
		l.mu.Lock()
		wanted := l.wanted[desc.Digest]
		l.mu.Unlock()
		if wanted {
			// Layers wait for a download slot: said before any starts.
			for _, layer := range m.Layers {
				l.mu.Lock()
				said := l.waiting[layer.Digest]
				if l.waiting == nil {
					l.waiting = map[digest.Digest]bool{}
				}
				l.waiting[layer.Digest] = true
				l.mu.Unlock()
				if said || l.sink == nil {
					continue
				}
				if _, err := l.cs.Info(ctx, layer.Digest); errdefs.IsNotFound(err) {
					l.sink.Emit(progress.Event{Transfer: &progress.Transfer{ID: progress.ShortID(layer.Digest.String()), Digest: layer.Digest.String(),
						Kind: kindOf(layer.MediaType), State: progress.Waiting, Total: layer.Size}})
				}
			}
			return append([]ocispec.Descriptor{m.Config}, m.Layers...), nil
		}
		return []ocispec.Descriptor{m.Config}, nil
	}
	return nil, nil
}

// announceExisting reports blobs already in the store.
func announceExisting(cs content.Store, sink progress.Sink) images.HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if _, err := cs.Info(ctx, desc.Digest); err == nil {
			sink.Emit(progress.Event{Transfer: &progress.Transfer{ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(),
				Kind: kindOf(desc.MediaType), State: progress.Exists, Current: desc.Size, Total: desc.Size}})
		}
		return nil, nil
	}
}

// trackingFetcher fetches from the registry and turns fetches into
// progress events.
type trackingFetcher struct {
	fetch func(context.Context, ocispec.Descriptor) (io.ReadCloser, error)
	sink  progress.Sink
	// bytes bounds the bytes of the blobs downloading at once (maxBytes
	// in all; a larger blob goes alone).
	bytes    *semaphore.Weighted
	maxBytes int64
}

func (f *trackingFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	t := progress.Transfer{ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(), Kind: kindOf(desc.MediaType), Total: desc.Size}
	w := min(max(desc.Size, 1), f.maxBytes)
	if err := f.bytes.Acquire(ctx, w); err != nil {
		return nil, err
	}
	var once sync.Once
	release := func() { once.Do(func() { f.bytes.Release(w) }) }
	rc, err := f.fetch(ctx, desc)
	if err != nil {
		release()
		t.State, t.Err = progress.Failed, err
		f.sink.Emit(progress.Event{Transfer: &t})
		return nil, err
	}
	t.State = progress.Downloading
	f.sink.Emit(progress.Event{Transfer: &t})
	return &countingReader{ReadCloser: rc, t: t, sink: f.sink, release: release}, nil
}

type countingReader struct {
	io.ReadCloser
	t         progress.Transfer
	sink      progress.Sink
	verifying bool
	// release gives the blob's room under the bytes bound back.
	release func()
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	before := r.t.Current
	r.t.Current += int64(n)
	if r.t.Current/(256<<10) != before/(256<<10) { // a byte count every 256 KiB
		t := r.t
		r.sink.Emit(progress.Event{Transfer: &t})
	}
	if !r.verifying && (r.t.Current >= r.t.Total || errors.Is(err, io.EOF)) && r.t.Current > 0 {
		// Every byte is in: the digest is checked before the blob is
		// committed (content.Copy), as dockerd says.
		r.verifying = true
		t := r.t
		t.State = progress.Verifying
		r.sink.Emit(progress.Event{Transfer: &t})
	}
	return n, err
}

// Close reports the blob downloaded when all its bytes were read.
func (r *countingReader) Close() error {
	if r.t.Current >= r.t.Total {
		t := r.t
		t.State = progress.Downloaded
		r.sink.Emit(progress.Event{Transfer: &t})
	}
	r.release()
	return r.ReadCloser.Close()
}

// fetchedSet records every descriptor a pull's handlers visit (fetched,
// or in the store already), for their distribution-source labels.
type fetchedSet struct {
	mu   sync.Mutex
	seen []digest.Digest
	has  map[digest.Digest]bool
}

func (f *fetchedSet) record(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.has == nil {
		f.has = map[digest.Digest]bool{}
	}
	if !f.has[desc.Digest] {
		f.has[desc.Digest] = true
		f.seen = append(f.seen, desc.Digest)
	}
	return nil, nil
}

func (f *fetchedSet) digests() []digest.Digest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// labelSources records repo in the distribution-source label of each of
// digests, all in one batch (as a push writes them back), so a push to
// another repository of the registry mounts them.
func (s *Service) labelSources(ctx context.Context, digests []digest.Digest, repo *registry.Repository) error {
	return s.batch(context.WithoutCancel(ctx), func(ctx context.Context) error {
		n := writeBackConcurrency
		if s.batched {
			n = 1
		}
		_, err := mount.WriteBack(ctx, s.content, digests, repo.Registry, repo.Path, n)
		return err
	})
}

// RemoteTags lists the tags the registry has for repository repo (a
// reference without tag or digest), as docker pull --all-tags asks
// before pulling each. WithRegistryHosts and WithMaxRetries apply.
func (s *Service) RemoteTags(ctx context.Context, repo string, opts ...TransferOption) ([]string, error) {
	o, err := newTransferOptions(opts)
	if err != nil {
		return nil, err
	}
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil {
		return nil, &ReferenceError{What: "repository", Value: repo, Err: err}
	}
	if !reference.IsNameOnly(named) {
		return nil, &ReferenceError{What: "repository", Value: repo, Err: errors.New("a repository has no tag or digest")}
	}
	r, err := registry.NewRepository(o.hosts, reference.Domain(named), reference.Path(named), registry.ForPull, o.retry)
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", named.Name(), err)
	}
	return r.Tags(ctx)
}
