package imageservice

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"

	"github.com/ctrpush/ctrpush/mount"
	"github.com/ctrpush/ctrpush/progress"
)

// DefaultMaxConcurrentUploads bounds blob uploads in flight. Chosen from
// the sweep in docs/BENCHMARKS.md (2 cores, reference registry, loopback):
// 8 beat 4 by ~20% on 200 small layers and matched or beat it on 8 large
// ones, for ~4 MiB more peak memory.
const DefaultMaxConcurrentUploads = 8

// TransferOption configures one Push or Pull; an option that applies to
// only one of them says so, and the other rejects it.
type TransferOption func(*transferOptions) error

type transferOptions struct {
	dest       string
	platforms  []ocispec.Platform
	all        bool
	plainHTTP  bool
	hosts      docker.RegistryHosts
	sink       progress.Sink
	maxUploads int
	maxRetries int
	backoff    time.Duration
}

// WithDestination pushes to ref instead of the source's own name (default:
// the source name). With a tagless source (every tag of a repository) ref
// must be a repository without tag; with a tagged source a tagless ref
// takes the source's tag.
func WithDestination(ref string) TransferOption {
	return func(o *transferOptions) error { o.dest = ref; return nil }
}

// WithPlatforms pushes only the manifests of these platforms ("linux/arm64").
// One platform pushes that manifest; several push a new index of just
// those manifests (its digest differs from the local image's). Default:
// the whole image when all of it is present, else the host's manifest.
func WithPlatforms(ps ...string) TransferOption {
	return func(o *transferOptions) error {
		for _, s := range ps {
			p, err := platforms.Parse(s)
			if err != nil {
				return &ReferenceError{What: "platform", Value: s, Err: err}
			}
			o.platforms = append(o.platforms, platforms.Normalize(p))
		}
		return nil
	}
}

// WithAllPlatforms pushes the whole image as it is; missing content is an
// error naming the missing blobs (default false).
func WithAllPlatforms() TransferOption {
	return func(o *transferOptions) error { o.all = true; return nil }
}

// WithPlainHTTP talks HTTP, not HTTPS, to every registry (default: HTTP
// only for loopback registries, as docker and nerdctl do).
func WithPlainHTTP() TransferOption {
	return func(o *transferOptions) error { o.plainHTTP = true; return nil }
}

// WithRegistryHosts sets how registry hosts are reached: endpoints, TLS,
// authorization (default: containerd's config.ConfigureHosts with no
// hosts directory and anonymous access).
func WithRegistryHosts(h docker.RegistryHosts) TransferOption {
	return func(o *transferOptions) error { o.hosts = h; return nil }
}

// WithProgress sends progress events to sink (default: discarded).
func WithProgress(sink progress.Sink) TransferOption {
	return func(o *transferOptions) error { o.sink = sink; return nil }
}

// WithMaxConcurrentUploads bounds uploads in flight (default
// DefaultMaxConcurrentUploads; must be ≥ 1).
func WithMaxConcurrentUploads(n int) TransferOption {
	return func(o *transferOptions) error {
		if n < 1 {
			return fmt.Errorf("max concurrent uploads must be at least 1, got %d: %w", n, errdefs.ErrInvalidArgument)
		}
		o.maxUploads = n
		return nil
	}
}

// newTransferOptions applies opts over the defaults and checks them.
func newTransferOptions(opts []TransferOption) (transferOptions, error) {
	o := transferOptions{sink: progress.Discard, maxUploads: DefaultMaxConcurrentUploads, maxRetries: DefaultMaxRetries, backoff: defaultBackoff}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if o.all && len(o.platforms) > 0 {
		return o, fmt.Errorf("--all-platforms and --platform exclude each other: %w", errdefs.ErrInvalidArgument)
	}
	if o.hosts == nil {
		o.hosts = DefaultRegistryHosts(o.plainHTTP)
	}
	return o, nil
}

// WithMaxRetries sets how many times a transient registry fault
// (connection reset or refused, timeout, 408, 429, 5xx) is retried per
// blob or manifest, with exponential backoff and jitter, honouring
// Retry-After (default DefaultMaxRetries; 0: no retry).
func WithMaxRetries(n int) TransferOption {
	return func(o *transferOptions) error {
		if n < 0 {
			return fmt.Errorf("max retries must not be negative, got %d: %w", n, errdefs.ErrInvalidArgument)
		}
		o.maxRetries = n
		return nil
	}
}

// PushResult is one reference pushed.
type PushResult struct {
	// Source is the local image name.
	Source string
	// Reference is the destination, "host/repo:tag".
	Reference string
	// Repository is "host/repo" and Tag the tag.
	Repository, Tag string
	// Descriptor is what the tag now points to.
	Descriptor ocispec.Descriptor
	// ManifestInsteadOfIndex: the index could not be pushed because content
	// was missing, so the host's manifest was pushed instead.
	ManifestInsteadOfIndex bool
	// NewIndex: several platforms were requested and a new index of just
	// those was pushed; Original is the local image's target digest.
	NewIndex bool
	Original digest.Digest
}

// ImageNotFoundError says the local store has no such image.
type ImageNotFoundError struct {
	Name      string
	Namespace string
}

func (e *ImageNotFoundError) Error() string {
	return fmt.Sprintf("image %s not found in the store (namespace %s)", e.Name, e.Namespace)
}

// Unwrap lets errdefs.IsNotFound hold.
func (e *ImageNotFoundError) Unwrap() error { return errdefs.ErrNotFound }

// pushJob is one local image and where it goes.
type pushJob struct {
	img  images.Image
	dest reference.NamedTagged
}

// Push pushes the local image source to a registry: a tagged reference
// pushes that tag, a repository without tag pushes every local tag of it.
// It returns one result per pushed reference, in order; on error the
// results so far are returned with it.
func (s *Service) Push(ctx context.Context, source string, opts ...TransferOption) ([]PushResult, error) {
	o, err := newTransferOptions(opts)
	if err != nil {
		return nil, err
	}
	ctx = s.withNamespace(ctx)
	jobs, err := s.pushJobs(ctx, source, o.dest)
	if err != nil {
		return nil, err
	}

	var results []PushResult
	err = s.withLease(ctx, func(ctx context.Context) error {
		resolvers := map[string]*destination{}
		for _, job := range jobs {
			repo := job.dest.Name()
			r, ok := resolvers[repo]
			if !ok {
				// One resolver, so one status tracker, per destination
				// repository: what one repository holds never counts as
				// present in another.
				tracker := docker.NewInMemoryTracker()
				r = &destination{tracker: tracker, resolver: docker.NewResolver(docker.ResolverOptions{Hosts: o.hosts, Tracker: tracker})}
				if bc, err := newBlobClient(o.hosts, reference.Domain(job.dest), reference.Path(job.dest)); err == nil {
					r.blobs = bc
				} else {
					log.G(ctx).WithError(err).Debug("cross-repository mounts disabled")
				}
				resolvers[repo] = r
				o.sink.Emit(progress.Event{Message: fmt.Sprintf("The push refers to repository [%s]", repo)})
			}
			res, err := s.pushOne(ctx, r, job, &o)
			if err != nil {
				return err
			}
			results = append(results, res)
			o.sink.Emit(progress.Event{Result: &progress.Result{Repository: repo, Tag: res.Tag, Digest: res.Descriptor.Digest.String(), Size: res.Descriptor.Size}})
		}
		return nil
	})
	return results, err
}

// pushJobs resolves source (and dest) to local images and destinations.
func (s *Service) pushJobs(ctx context.Context, source, dest string) ([]pushJob, error) {
	src, err := reference.ParseNormalizedNamed(source)
	if err != nil {
		return nil, &ReferenceError{What: "source", Value: source, Err: err}
	}
	if _, ok := src.(reference.Digested); ok {
		return nil, &ReferenceError{What: "source", Value: source, Err: errors.New("push a tag, not a digest")}
	}
	var dst reference.Named
	if dest != "" {
		dst, err = reference.ParseNormalizedNamed(dest)
		if err != nil {
			return nil, &ReferenceError{What: "destination", Value: dest, Err: err}
		}
		if _, ok := dst.(reference.Digested); ok {
			return nil, &ReferenceError{What: "destination", Value: dest, Err: errors.New("a destination names a tag, not a digest")}
		}
	}
	destFor := func(tag string) (reference.NamedTagged, error) {
		base := src
		if dst != nil {
			base = dst
		}
		if t, ok := base.(reference.Tagged); ok {
			tag = t.Tag()
		}
		return reference.WithTag(reference.TrimNamed(base), tag)
	}

	if tagged, ok := src.(reference.Tagged); ok {
		img, err := s.images.Get(ctx, src.String())
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil, &ImageNotFoundError{Name: src.String(), Namespace: namespaceOf(ctx)}
			}
			return nil, fmt.Errorf("look up image %s: %w", src, err)
		}
		d, err := destFor(tagged.Tag())
		if err != nil {
			return nil, &ReferenceError{What: "destination", Value: dest, Err: err}
		}
		return []pushJob{{img: img, dest: d}}, nil
	}

	// A repository without tag: every local tag of it.
	if _, ok := dst.(reference.Tagged); ok {
		return nil, &ReferenceError{What: "destination", Value: dest, Err: errors.New("the source has no tag (every tag of the repository is pushed), so the destination must be a repository without tag too")}
	}
	tagged, err := s.repositoryTags(ctx, src)
	if err != nil {
		return nil, err
	}
	var jobs []pushJob
	for _, rt := range tagged {
		img := rt.img
		d, err := destFor(rt.tag)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, pushJob{img: img, dest: d})
	}
	if len(jobs) == 0 {
		return nil, &ImageNotFoundError{Name: src.Name() + " (any tag)", Namespace: namespaceOf(ctx)}
	}
	return jobs, nil
}

// repositoryTag is one local image named repo:tag.
type repositoryTag struct {
	img images.Image
	tag string
}

// repositoryTags lists the local images named repo:TAG (not by digest),
// reading only the image records.
func (s *Service) repositoryTags(ctx context.Context, repo reference.Named) ([]repositoryTag, error) {
	all, err := s.images.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var out []repositoryTag
	for _, img := range all {
		n, err := reference.ParseNormalizedNamed(img.Name)
		if err != nil || n.Name() != repo.Name() {
			continue
		}
		t, ok := n.(reference.Tagged)
		if !ok {
			continue
		}
		if _, ok := n.(reference.Digested); ok {
			continue
		}
		out = append(out, repositoryTag{img: img, tag: t.Tag()})
	}
	return out, nil
}

// Tags lists the tags the store has for repository repo ("alpine" means
// docker.io/library/alpine), as docker push --all-tags pushes them.
func (s *Service) Tags(ctx context.Context, repo string) ([]string, error) {
	ctx = s.withNamespace(ctx)
	n, err := reference.ParseNormalizedNamed(repo)
	if err != nil {
		return nil, &ReferenceError{What: "repository", Value: repo, Err: err}
	}
	rts, err := s.repositoryTags(ctx, n)
	if err != nil {
		return nil, err
	}
	tags := make([]string, 0, len(rts))
	for _, rt := range rts {
		tags = append(tags, rt.tag)
	}
	sort.Strings(tags)
	return tags, nil
}

// ManifestPushedInsteadOfIndex is the JSON stream's aux message (as moby
// sends it) when the index could not be pushed for missing content and the
// host's manifest was pushed instead.
type ManifestPushedInsteadOfIndex struct {
	ManifestPushedInsteadOfIndex bool               `json:"manifestPushedInsteadOfIndex"` // always true
	OriginalIndex                ocispec.Descriptor `json:"originalIndex"`
	SelectedManifest             ocispec.Descriptor `json:"selectedManifest"`
}

// ContentMissing is the JSON stream's aux message (as moby sends it) when
// a push fails because content is missing from the store.
type ContentMissing struct {
	ContentMissing bool               `json:"contentMissing"` // always true
	Desc           ocispec.Descriptor `json:"desc"`
}

// destination is one destination repository's resolver and status tracker.
type destination struct {
	resolver remotes.Resolver
	tracker  docker.StatusTracker
	blobs    *blobClient // nil: no cross-repository mounts
}

func (s *Service) pushOne(ctx context.Context, r *destination, job pushJob, o *transferOptions) (PushResult, error) {
	res := PushResult{Source: job.img.Name, Reference: job.dest.String(), Repository: job.dest.Name(), Tag: job.dest.Tag(), Original: job.img.Target.Digest}
	registry, path := reference.Domain(job.dest), reference.Path(job.dest)
	cs := newPushStore(s.content)
	if err := s.holdContent(ctx, cs, job.img.Target); err != nil {
		return res, fmt.Errorf("image %s: %w", job.img.Name, err)
	}
	store, sel, err := s.selectFor(ctx, cs, job, o)
	if err != nil {
		return res, err
	}
	if sel.NewIndex {
		desc, err := s.writeIndex(ctx, job.img.Target, sel.Manifests)
		if err != nil {
			return res, fmt.Errorf("image %s: make index of %s: %w", job.img.Name, formatPlatforms(platformsOf(sel.Manifests)), err)
		}
		sel.Descriptor = desc
		res.NewIndex = true
		o.sink.Emit(progress.Event{Message: fmt.Sprintf("Pushing a new index of %s: %s (the local image %s is %s)",
			formatPlatforms(platformsOf(sel.Manifests)), desc.Digest, job.img.Name, job.img.Target.Digest)})
	}

	// The tag already points at exactly this: nothing to send (one request
	// instead of one per blob, as crane does).
	tagAbsent := false
	if r.blobs != nil {
		have, err := r.blobs.manifestDigest(ctx, job.dest.Tag(), sel.Descriptor.MediaType)
		tagAbsent = err == nil && have == ""
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			// Nothing has started: an unreachable registry fails at once
			// instead of being retried blob by blob.
			return res, describePushError(job, err)
		}
		if err == nil && have == sel.Descriptor.Digest {
			if err := reportPresent(ctx, store, sel.Descriptor, o.sink); err != nil {
				return res, err
			}
			res.Descriptor = sel.Descriptor
			s.writeBack(ctx, cs, sel.Descriptor, registry, path)
			return res, nil
		}
	}

	// A repository the registry says does not exist holds no blob: skip
	// the HEAD before each upload (one request instead of one per blob).
	newRepo := r.blobs != nil && tagAbsent && r.blobs.repositoryUnknown(ctx)
	err = s.pushContent(ctx, r, job.dest, sel.Descriptor, store, cs, newRepo, o)
	var lm *localMissingError
	if err != nil && errors.As(err, &lm) && images.IsIndexType(sel.Descriptor.MediaType) && len(o.platforms) == 0 && !o.all {
		ms, werr := walkManifests(ctx, store, job.img.Target)
		best, ok := bestManifest(ms, s.host)
		if werr == nil && ok {
			log.G(ctx).WithError(err).Debug("index push failed on missing content; pushing the host's manifest")
			o.sink.Emit(progress.Event{Message: fmt.Sprintf("Content of %s is missing locally (%s): manifest pushed instead of index (%s)",
				job.img.Name, lm.desc.Digest, platforms.Format(best.Platform))})
			original := sel.Descriptor
			sel = single(best)
			res.ManifestInsteadOfIndex = true
			o.sink.Emit(progress.Event{Aux: ManifestPushedInsteadOfIndex{ManifestPushedInsteadOfIndex: true, OriginalIndex: original, SelectedManifest: sel.Descriptor}})
			err = s.pushContent(ctx, r, job.dest, sel.Descriptor, store, cs, newRepo, o)
		}
	}
	if err != nil {
		if errors.As(err, &lm) {
			o.sink.Emit(progress.Event{Aux: ContentMissing{ContentMissing: true, Desc: sel.Descriptor}})
		}
		return res, describePushError(job, err)
	}
	res.Descriptor = sel.Descriptor
	s.writeBack(ctx, cs, sel.Descriptor, registry, path)
	return res, nil
}

// selectFor picks what job pushes, over the store as the push sees it:
// blobs missing locally that a repository of the destination registry
// holds count as present, because the push mounts them. Push and PlanPush
// share it, so the dry run predicts the same choice.
func (s *Service) selectFor(ctx context.Context, cs content.Store, job pushJob, o *transferOptions) (*mount.Store, selection, error) {
	registry := reference.Domain(job.dest)
	mountable, err := mount.MountableBlobs(ctx, cs, job.img.Target, registry)
	if err != nil {
		return nil, selection{}, fmt.Errorf("image %s: %w", job.img.Name, err)
	}
	store := mount.NewStore(cs, mountable, registry)
	sel, err := selectPush(ctx, store, job.img, platformRequest{platforms: o.platforms, all: o.all, host: s.host})
	return store, sel, err
}

// holdContent puts root and everything below it that is in the store
// under the push's lease, so deleting the image and collecting garbage
// mid-push cannot remove what the push reads. A blob its parent already
// references through a containerd.io/gc.ref.content label is held through
// that parent (the lease is not flat: the collector follows references);
// only the root and blobs without such a reference are added, which on a
// daemon saves one metadata write per blob.
func (s *Service) holdContent(ctx context.Context, cs *pushStore, root ocispec.Descriptor) error {
	id, ok := leases.FromContext(ctx)
	if !ok {
		return nil
	}
	type edge struct{ parent, child digest.Digest }
	var descs []ocispec.Descriptor
	var edges []edge
	seen := map[digest.Digest]bool{}
	var walk func(d ocispec.Descriptor) error
	walk = func(d ocispec.Descriptor) error {
		if seen[d.Digest] {
			return nil
		}
		seen[d.Digest] = true
		descs = append(descs, d)
		if !images.IsManifestType(d.MediaType) && !images.IsIndexType(d.MediaType) {
			return nil
		}
		children, err := images.Children(ctx, cs, d)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		}
		for _, c := range children {
			edges = append(edges, edge{d.Digest, c.Digest})
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		return fmt.Errorf("list content to hold: %w", err)
	}
	if err := cs.prefetch(ctx, descs); err != nil {
		return fmt.Errorf("list content to hold: %w", err)
	}
	covered := map[digest.Digest]bool{}
	for _, e := range edges {
		info, err := cs.Info(ctx, e.parent)
		if err != nil {
			continue
		}
		for k, v := range info.Labels {
			if v == e.child.String() && strings.HasPrefix(k, "containerd.io/gc.ref.content") {
				covered[e.child] = true
			}
		}
	}
	var hold []digest.Digest
	for _, d := range descs {
		if d.Digest != root.Digest && covered[d.Digest] {
			continue
		}
		if _, err := cs.Info(ctx, d.Digest); err != nil {
			continue // absent: nothing to hold (the push reports it if it needs it)
		}
		hold = append(hold, d.Digest)
	}
	return s.batch(ctx, func(ctx context.Context) error {
		for _, d := range hold {
			if err := s.leases.AddResource(ctx, leases.Lease{ID: id}, leases.Resource{ID: d.String(), Type: "content"}); err != nil {
				return fmt.Errorf("hold %s in lease %s: %w", d, id, err)
			}
		}
		return nil
	})
}

// writeBackConcurrency is how many label updates are in flight on a store
// without batches (a daemon: one round trip and commit each).
const writeBackConcurrency = 8

func (s *Service) writeBack(ctx context.Context, cs content.Store, root ocispec.Descriptor, registry, path string) {
	err := s.batch(context.WithoutCancel(ctx), func(ctx context.Context) error {
		n := writeBackConcurrency
		if s.batched {
			n = 1
		}
		_, err := mount.WriteBackConcurrently(ctx, cs, root, registry, path, n)
		return err
	})
	if err != nil {
		log.G(ctx).WithError(err).Warn("could not record the pushed repository in the distribution-source labels")
	}
}

// reportPresent emits "already exists" for root and everything below it
// that the store can list, children first.
func reportPresent(ctx context.Context, cs content.Store, root ocispec.Descriptor, sink progress.Sink) error {
	seen := map[digest.Digest]bool{}
	var walk func(d ocispec.Descriptor) error
	walk = func(d ocispec.Descriptor) error {
		if seen[d.Digest] {
			return nil
		}
		seen[d.Digest] = true
		children, err := images.Children(ctx, cs, d)
		if err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		for _, c := range children {
			if err := walk(c); err != nil {
				return err
			}
		}
		sink.Emit(progress.Event{Transfer: &progress.Transfer{ID: progress.ShortID(d.Digest.String()), Digest: d.Digest.String(),
			Kind: kindOf(d.MediaType), State: progress.Exists, Current: d.Size, Total: d.Size}})
		return nil
	}
	return walk(root)
}

func (s *Service) pushContent(ctx context.Context, r *destination, dest reference.NamedTagged, desc ocispec.Descriptor, store content.Store, labels content.Store, newRepo bool, o *transferOptions) error {
	// name:tag@digest: the root manifest is PUT by tag, children by digest.
	pusher, err := r.resolver.Pusher(ctx, dest.String()+"@"+desc.Digest.String())
	if err != nil {
		return err
	}
	provider := localProvider{store}
	tp := &trackingPusher{Pusher: pusher, sink: o.sink, tracker: r.tracker,
		blobs: r.blobs, store: labels, provider: provider, retry: retrier{max: o.maxRetries, backoff: o.backoff},
		root: desc.Digest, tag: dest.Tag(), registry: reference.Domain(dest), path: reference.Path(dest), newRepository: newRepo}
	limiter := semaphore.NewWeighted(int64(o.maxUploads))
	return remotes.PushContent(ctx, tp, desc, provider, limiter, platforms.All, nil)
}

// newIndex makes an index of ms (same media type as the original target
// when that is an index), with GC references to its children as labels.
func newIndex(original ocispec.Descriptor, ms []ImageManifest) (ocispec.Descriptor, []byte, map[string]string, error) {
	mediaType := ocispec.MediaTypeImageIndex
	if images.IsIndexType(original.MediaType) {
		mediaType = original.MediaType
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaType}
	labels := map[string]string{}
	for i, m := range ms {
		d := m.Descriptor
		p := m.Platform
		d.Platform = &p
		idx.Manifests = append(idx.Manifests, d)
		labels[fmt.Sprintf("containerd.io/gc.ref.content.m.%d", i)] = d.Digest.String()
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return ocispec.Descriptor{}, nil, nil, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}, b, labels, nil
}

// writeIndex stores a new index of ms; the caller's lease holds it.
func (s *Service) writeIndex(ctx context.Context, original ocispec.Descriptor, ms []ImageManifest) (ocispec.Descriptor, error) {
	desc, b, labels, err := newIndex(original, ms)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := content.WriteBlob(ctx, s.content, "ctrpush-index-"+desc.Digest.Encoded(), bytes.NewReader(b), desc, content.WithLabels(labels)); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// describePushError adds what was being done and, for an unreachable
// registry, which host and what to check.
func describePushError(job pushJob, err error) error {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var hostname x509.HostnameError
	if errors.As(err, &unknownCA) || errors.As(err, &verify) || errors.As(err, &hostname) {
		host := reference.Domain(job.dest)
		return fmt.Errorf("push %s to %s: the certificate of registry %s is not trusted; trust its CA with ca = \"/path/to/ca.pem\" in <hosts dir>/%s/hosts.toml, or skip verification for this registry only (--insecure-registry %s): %w",
			job.img.Name, job.dest, host, host, host, err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("push %s to %s: registry %s is unreachable; check that it is running and the address is right: %w",
			job.img.Name, job.dest, reference.Domain(job.dest), err)
	}
	return fmt.Errorf("push %s to %s: %w", job.img.Name, job.dest, err)
}

// DefaultRegistryHosts reaches registries over HTTPS, or HTTP for loopback
// hosts (127.0.0.0/8, ::1, localhost) and when plainHTTP is set, with
// anonymous access. RegistryHosts configures more.
func DefaultRegistryHosts(plainHTTP bool) docker.RegistryHosts {
	return RegistryHosts(HostsConfig{PlainHTTP: plainHTTP})
}

// localMissingError marks a blob the local store lacks while pushing, as
// opposed to anything the registry answered.
type localMissingError struct {
	desc ocispec.Descriptor
	err  error
}

func (e *localMissingError) Error() string {
	return fmt.Sprintf("blob %s missing from the local store: %v", e.desc.Digest, e.err)
}

func (e *localMissingError) Unwrap() error { return e.err }

// localProvider marks missing-content errors as local. It keeps Info so
// containerd's pusher still sees distribution-source labels.
type localProvider struct{ content.Store }

func (p localProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := p.Store.ReaderAt(ctx, desc)
	if err != nil && errdefs.IsNotFound(err) {
		return nil, &localMissingError{desc: desc, err: err}
	}
	return ra, err
}
