package imageservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/registry"
	"github.com/ctrpush/ctrpush/mount"
	"github.com/ctrpush/ctrpush/progress"
)

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
	// Referrers is how many referrers went with the image (WithReferrers),
	// sent or found in the destination already.
	Referrers int
	// Platforms are the platforms of the manifests pushed ("linux/arm64").
	Platforms []string
	// Compressed: layers were converted (WithCompression), so Descriptor
	// is a new digest; Original is the image's own.
	Compressed bool
	// Tagged: the tag names Descriptor (this push moved it, or it did
	// already). Always true in the results of a push to one destination.
	Tagged bool
	// Signatures are those placed with the image (WithSigner).
	Signatures []SignatureResult
	// Err says, for a push to several destinations, why this one is not
	// tagged or its referrers did not go.
	Err error
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

// pushGroup is one local image and every destination it goes to in one
// run (several with repeated WithDestination).
type pushGroup struct {
	img   images.Image
	dests []reference.NamedTagged
}

// jobs are the group's destinations one by one.
func (g pushGroup) jobs() []pushJob {
	out := make([]pushJob, len(g.dests))
	for i, d := range g.dests {
		out[i] = pushJob{img: g.img, dest: d}
	}
	return out
}

// registries are the registry hosts of the group's destinations, each once.
func (g pushGroup) registries() []string {
	var out []string
	for _, d := range g.dests {
		if h := reference.Domain(d); !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// Push pushes the local image source to a registry: a tagged reference
// pushes that tag, a repository without tag pushes every local tag of it.
// It returns one result per pushed reference, in order; on error the
// results so far are returned with it.
//
// With several destinations (repeated WithDestination) it returns one
// result per destination and reference, each saying whether its tag
// moved (Tagged) or why not (Err); when any destination is not tagged the
// error is a *DestinationsError saying where each one stands.
func (s *Service) Push(ctx context.Context, source string, opts ...TransferOption) ([]PushResult, error) {
	o, err := newTransferOptions(opts)
	if err != nil {
		return nil, err
	}
	ctx = s.withNamespace(ctx)
	groups, err := s.pushJobs(ctx, source, o.dests)
	if err != nil {
		return nil, err
	}
	multi := len(o.dests) > 1

	var results []PushResult
	err = s.withLease(ctx, func(ctx context.Context) error {
		repos := repositories{}
		dests := map[*registry.Repository]*destination{}
		var failed []PushResult
		for _, grp := range groups {
			legs := make([]*leg, len(grp.dests))
			for i, job := range grp.jobs() {
				name := job.dest.Name()
				repo, err := repos.forJob(job, &o)
				if err != nil {
					return err
				}
				d, ok := dests[repo]
				if !ok {
					d = newDestination(repo)
					dests[repo] = d
				}
				legs[i] = &leg{dest: d, tag: job.dest.Tag(), index: i}
				if multi {
					legs[i].label = job.dest.String()
				}
				if !ok || multi {
					o.sink.Emit(progress.Event{Message: fmt.Sprintf("The push refers to repository [%s]", name), Destination: legs[i].label})
				}
			}
			res, err := s.pushGroup(ctx, legs, grp, &o)
			for i, r := range res {
				if r.Tagged {
					o.sink.Emit(progress.Event{Result: &progress.Result{Repository: r.Repository, Tag: r.Tag, Digest: r.Descriptor.Digest.String(), Size: r.Descriptor.Size},
						Destination: legs[i].label})
				}
			}
			results = append(results, res...)
			if !multi {
				if err != nil {
					return err
				}
				continue
			}
			for _, r := range res {
				if !r.Tagged {
					failed = append(failed, r)
				}
			}
			if err != nil && len(failed) == 0 {
				return err // not one destination's: nothing went
			}
			if len(failed) > 0 {
				break // the next tags would leave the registries further apart
			}
		}
		if len(failed) > 0 {
			return &DestinationsError{Source: source, Results: results, BestEffort: o.bestEffort}
		}
		return nil
	})
	return results, err
}

// repositories are the destination repositories of one Push or PlanPush,
// each opened once, by name.
type repositories map[string]*registry.Repository

// forJob is the repository job pushes to.
func (rs repositories) forJob(job pushJob, o *transferOptions) (*registry.Repository, error) {
	name := job.dest.Name()
	if r, ok := rs[name]; ok {
		return r, nil
	}
	r, err := registry.NewRepository(o.hosts, reference.Domain(job.dest), reference.Path(job.dest), registry.ForPush, o.retry)
	if err != nil {
		return nil, describePushError(job, err)
	}
	rs[name] = r
	return r, nil
}

// pushJobs resolves source (and the destinations) to local images and
// where each goes.
func (s *Service) pushJobs(ctx context.Context, source string, dests []string) ([]pushGroup, error) {
	src, err := reference.ParseNormalizedNamed(source)
	if err != nil {
		return nil, &ReferenceError{What: "source", Value: source, Err: err}
	}
	if _, ok := src.(reference.Digested); ok {
		return nil, &ReferenceError{What: "source", Value: source, Err: errors.New("push a tag, not a digest")}
	}
	var dsts []reference.Named
	for _, dest := range dests {
		dst, err := reference.ParseNormalizedNamed(dest)
		if err != nil {
			return nil, &ReferenceError{What: "destination", Value: dest, Err: err}
		}
		if _, ok := dst.(reference.Digested); ok {
			return nil, &ReferenceError{What: "destination", Value: dest, Err: errors.New("a destination names a tag, not a digest")}
		}
		dsts = append(dsts, dst)
	}
	if len(dsts) == 0 {
		dsts = []reference.Named{nil}
	}
	destsFor := func(tag string) ([]reference.NamedTagged, error) {
		var out []reference.NamedTagged
		for i, dst := range dsts {
			base := src
			if dst != nil {
				base = dst
			}
			t := tag
			if tg, ok := base.(reference.Tagged); ok {
				t = tg.Tag()
			}
			d, err := reference.WithTag(reference.TrimNamed(base), t)
			if err != nil {
				return nil, &ReferenceError{What: "destination", Value: dests[i], Err: err}
			}
			if slices.ContainsFunc(out, func(o reference.NamedTagged) bool { return o.String() == d.String() }) {
				return nil, &ReferenceError{What: "destination", Value: dests[i], Err: fmt.Errorf("%s is named twice; give each destination once", d)}
			}
			out = append(out, d)
		}
		return out, nil
	}

	if tagged, ok := src.(reference.Tagged); ok {
		img, err := s.images.Get(ctx, src.String())
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil, &ImageNotFoundError{Name: src.String(), Namespace: namespaceOf(ctx)}
			}
			return nil, fmt.Errorf("look up image %s: %w", src, err)
		}
		ds, err := destsFor(tagged.Tag())
		if err != nil {
			return nil, err
		}
		return []pushGroup{{img: img, dests: ds}}, nil
	}

	// A repository without tag: every local tag of it.
	for i, dst := range dsts {
		if _, ok := dst.(reference.Tagged); ok {
			return nil, &ReferenceError{What: "destination", Value: dests[i], Err: errors.New("the source has no tag (every tag of the repository is pushed), so the destination must be a repository without tag too")}
		}
	}
	tagged, err := s.repositoryTags(ctx, src)
	if err != nil {
		return nil, err
	}
	var groups []pushGroup
	for _, rt := range tagged {
		ds, err := destsFor(rt.tag)
		if err != nil {
			return nil, err
		}
		groups = append(groups, pushGroup{img: rt.img, dests: ds})
	}
	if len(groups) == 0 {
		return nil, &ImageNotFoundError{Name: src.Name() + " (any tag)", Namespace: namespaceOf(ctx)}
	}
	return groups, nil
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

// pushTarget is what one job pushes, decided from the image's graph.
// Push and PlanPush share it, so the dry run decides as the push does.
type pushTarget struct {
	cs  *pushStore
	g   *imageGraph
	sel selection
	// virtual holds a new index that exists only in memory.
	virtual map[digest.Digest][]byte
	// compressed: sel is the compressed copy (WithCompression) of chosen,
	// the selection from the image as it is.
	compressed bool
	chosen     selection
}

// chosenSelection is what was picked from the image before any
// compression: what the push says it reduced.
func (t *pushTarget) chosenSelection() selection {
	if t.compressed {
		return t.chosen
	}
	return t.sel
}

// prepare walks job's image once, holds its content under the context's
// lease when hold is set, and picks what to push: blobs missing locally
// that a repository of the destination registry holds count as present,
// because the push mounts them.
//
// With several destinations a missing blob counts as present only when
// every destination's registry has a repository to mount it from: one
// selection for all of them.
//
// early, when set, is handed each layer as soon as it is compressed
// (WithCompression), so its upload can start while the others compress.
func (s *Service) prepare(ctx context.Context, img images.Image, registries []string, o *transferOptions, hold bool, early func(ocispec.Descriptor)) (*pushTarget, error) {
	job := pushJob{img: img}
	cs := newPushStore(s.content, s.blobs)
	g, err := walkGraph(ctx, cs, job.img.Target)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", job.img.Name, err)
	}
	if o.referrers {
		if err := g.walkReferrers(ctx, cs, o); err != nil {
			return nil, fmt.Errorf("image %s: %w", job.img.Name, err)
		}
	}
	if hold {
		if err := s.holdGraph(ctx, g); err != nil {
			return nil, fmt.Errorf("image %s: %w", job.img.Name, err)
		}
	}
	req := platformRequest{platforms: o.platforms, all: o.all, host: s.host}
	sel, err := selectFromGraph(ctx, cs, g, job.img, req, registries...)
	if err != nil {
		return nil, err
	}
	t := &pushTarget{cs: cs, g: g, sel: sel, virtual: map[digest.Digest][]byte{}}
	if sel.NewIndex {
		var annotations map[string]string
		if images.IsIndexType(job.img.Target.MediaType) {
			var idx ocispec.Index
			b, err := content.ReadBlob(ctx, cs, job.img.Target)
			if err == nil {
				err = json.Unmarshal(b, &idx)
			}
			if err != nil {
				return nil, fmt.Errorf("image %s: read index %s: %w", job.img.Name, job.img.Target.Digest, err)
			}
			if sameEntries(idx.Manifests, sel.Entries) {
				// Every entry of the image's index is kept: its own index,
				// byte for byte (a new serialization would change its
				// digest and break what is pinned or signed on it).
				t.sel = selection{Descriptor: job.img.Target, Manifests: sel.Manifests, Whole: true}
				return s.compressed(ctx, t, job.img.Name, o, hold, early)
			}
			annotations = idx.Annotations
		}
		desc, b, err := newIndex(job.img.Target, sel.Entries, annotations)
		if err != nil {
			return nil, fmt.Errorf("image %s: make index of %s: %w", job.img.Name, formatPlatforms(platformsOf(sel.Manifests)), err)
		}
		g.addVirtualIndex(desc, b)
		t.virtual[desc.Digest] = b
		t.sel.Descriptor = desc
	}
	return s.compressed(ctx, t, job.img.Name, o, hold, early)
}

// compressed is t with its layers compressed when the push asks for it
// (the dry run does not convert: it plans t).
func (s *Service) compressed(ctx context.Context, t *pushTarget, img string, o *transferOptions, hold bool, early func(ocispec.Descriptor)) (*pushTarget, error) {
	if o.compression == nil || !hold {
		return t, nil
	}
	return s.compressTarget(ctx, t, img, o, hold, early)
}

// connectionsFor is how many connections to dial ahead, while the tag
// check is answered, for a push of nodes: one per blob it may send a
// request for (a mount, an existence check or an upload, each after the
// answer), up to the bound on transfers in flight. Dialing writes
// nothing, so an unchanged image still costs only the check.
func connectionsFor(nodes []*node, o *transferOptions) int {
	n := 0
	for _, nd := range nodes {
		if !nd.isManifest() && !skipped(nd, o) {
			n++
		}
	}
	return min(n, o.maxUploads)
}

// tagState asks the destination what its tag holds: done when it already
// names root (nothing to send: one request instead of one per blob, as
// crane does); newRepo when the tag is absent and the registry says the
// repository does not exist, so it holds no blob either (no HEAD before
// each upload). Only an unreachable registry is an error: nothing has
// started, so it fails at once instead of being retried blob by blob.
func tagState(ctx context.Context, repo *registry.Repository, tag string, root ocispec.Descriptor) (done, newRepo bool, err error) {
	// Both questions at once: one round trip before the first upload
	// instead of two; the tag list is wasted only when the tag already
	// names root.
	unknown := make(chan bool, 1)
	go func() { unknown <- repo.RepositoryUnknown(ctx) }()
	have, err := repo.ManifestDigest(ctx, tag, root.MediaType)
	repoUnknown := <-unknown
	switch {
	case err != nil && registry.Unreachable(err):
		return false, false, err
	case err != nil:
		return false, false, nil
	case root.Digest != "" && have == root.Digest:
		return true, false, nil
	}
	return false, have == "" && repoUnknown, nil
}

// pushGroup pushes grp's image to each leg's destination (legs[i] is
// grp.dests[i]): one walk, one selection and one graph push for all. It
// returns one result per destination; with one destination only when it
// succeeded, with its error otherwise (as Push always did).
func (s *Service) pushGroup(ctx context.Context, legs []*leg, grp pushGroup, o *transferOptions) ([]PushResult, error) {
	jobs := grp.jobs()
	results := make([]PushResult, len(jobs))
	for i, job := range jobs {
		results[i] = PushResult{Source: job.img.Name, Reference: job.dest.String(), Repository: job.dest.Name(), Tag: job.dest.Tag(), Original: job.img.Target.Digest}
	}
	fail := func(err error) ([]PushResult, error) {
		if len(legs) == 1 {
			return nil, err
		}
		for i := range results {
			results[i].Err = err
		}
		return results, err
	}
	// With compression, each layer goes to the destinations as soon as
	// it is compressed, while the others are.
	var early *earlyPush
	if o.compression != nil {
		early = s.startEarly(ctx, legs, o)
		defer early.wait()
	}
	t, err := s.prepare(ctx, grp.img, grp.registries(), o, true, early.sender())
	if err != nil {
		early.stop()
		return fail(err)
	}
	sel := t.sel
	job := jobs[0]
	chosen := t.chosenSelection()
	if chosen.Descriptor.Digest != job.img.Target.Digest {
		r := s.reduction(job, chosen, "", o)
		r.Pushed = sel.Descriptor // compressed, it is the converted copy
		o.sink.Emit(progress.Event{Reduced: r})
	}
	// The tag checks go first and nothing is written before each answers;
	// when one takes longer than a registry close by answers, the
	// connections the transfers will need there are dialed meanwhile.
	conns := connectionsFor(t.g.below(sel.Descriptor.Digest), o)
	for _, l := range legs {
		l.check = startTagCheck(ctx, l.dest, l.tag, sel.Descriptor)
		go func() {
			if !l.check.answeredWithin(ctx, nearRoundTrip) {
				l.dest.repo.Prepare(conns)
			}
		}()
	}
	sg := newSigning(o, legs)
	gp := &graphPush{legs: legs, g: t.g, cs: t.cs, virtual: t.virtual, o: o, early: early.sentSet(), signing: sg}
	outcomes, err := gp.runLegs(ctx, sel.Descriptor)
	reduced := false
	if lm, ok := isLocalMissing(err); ok && images.IsIndexType(sel.Descriptor.MediaType) && len(o.platforms) == 0 && !o.all {
		if fb, ok := s.fallback(ctx, t); ok {
			log.G(ctx).WithError(err).Debug("index push failed on missing content; pushing the host's manifest")
			o.sink.Emit(progress.Event{Reduced: s.reduction(job, fb, fmt.Sprintf("Content of %s is missing locally (%s)", job.img.Name, lm.desc.Digest), o)})
			sel, reduced = fb, true
			outcomes, err = gp.runLegs(ctx, sel.Descriptor)
		}
	}
	if _, ok := isLocalMissing(err); ok {
		o.sink.Emit(progress.Event{Missing: &progress.ContentMissing{Root: sel.Descriptor}})
	}
	platforms := platformNames(platformsOf(sel.Manifests))
	var first error
	for i, l := range legs {
		res := &results[i]
		if reduced || chosen.Descriptor.Digest != job.img.Target.Digest {
			res.NewIndex, res.ManifestInsteadOfIndex = sel.NewIndex, reduced || !sel.NewIndex
		}
		res.Descriptor, res.Platforms, res.Compressed = sel.Descriptor, platforms, t.compressed
		switch oc := outcomes[i]; {
		case errors.Is(oc, errTagged):
			for _, n := range t.g.below(sel.Descriptor.Digest) {
				gp.emit(l, n.desc, progress.Exists, n.desc.Size, nil)
			}
			// The tag named the image already: its signatures go now.
			if err := sg.placeAt(ctx, l, sel.Descriptor); err != nil {
				res.Err = describePushError(jobs[i], err)
			}
			fallthrough
		case oc == nil:
			res.Tagged = true
			res.Signatures = sg.results(l)
			s.writeBack(ctx, t, sel.Descriptor, l.dest.repo)
			if err := s.pushReferrersOf(ctx, l, t, o, res); err != nil && res.Err == nil {
				res.Err = describePushError(jobs[i], err)
			}
		case errors.Is(oc, errHeld) || errors.Is(oc, errNotReached):
			res.Err = oc
		default:
			res.Err = describePushError(jobs[i], oc)
		}
		if res.Err != nil && first == nil {
			first = res.Err
		}
	}
	if len(legs) == 1 {
		if first != nil {
			return nil, first
		}
		return results, nil
	}
	return results, first
}

// fallback is what a push of t's index sends when content it counted on
// could not be mounted and no platform was asked for: the manifest the
// host prefers among those the store really holds in full (the labels
// that promised a mount proved wrong, so they count for nothing).
func (s *Service) fallback(ctx context.Context, t *pushTarget) (selection, bool) {
	local, err := manifestsOf(ctx, t.cs, t.g, "")
	if err != nil {
		return selection{}, false
	}
	best, ok := bestManifest(local, s.host)
	if !ok {
		return selection{}, false
	}
	reduced := single(best)
	reduced.complete(local)
	return reduced, true
}

// pushReferrersOf pushes to l's destination the referrers of what res
// says was pushed, when asked for.
func (s *Service) pushReferrersOf(ctx context.Context, l *leg, t *pushTarget, o *transferOptions, res *PushResult) error {
	if !o.referrers {
		return nil
	}
	n, err := s.pushReferrers(ctx, l, t, res.Descriptor, o)
	if err != nil {
		return err
	}
	res.Referrers = n
	return nil
}

// holdGraph puts the graph's content under the push's lease, so deleting
// the image and collecting garbage mid-push cannot remove what the push
// reads. A blob its parent already references through a
// containerd.io/gc.ref.content label is held through that parent (the
// collector follows references); only the root and blobs without such a
// reference are added, which on a daemon saves one metadata write per
// blob.
func (s *Service) holdGraph(ctx context.Context, g *imageGraph) error {
	id, ok := leases.FromContext(ctx)
	if !ok {
		return nil
	}
	covered := map[digest.Digest]bool{}
	for _, n := range g.order {
		if !n.present {
			continue
		}
		refs := map[string]bool{}
		for k, v := range n.info.Labels {
			if strings.HasPrefix(k, "containerd.io/gc.ref.content") {
				refs[v] = true
			}
		}
		for _, c := range n.children {
			if refs[c.Digest.String()] {
				covered[c.Digest] = true
			}
		}
	}
	var hold []digest.Digest
	for _, n := range g.order {
		if n.present && (n.desc.Digest == g.root.Digest || !covered[n.desc.Digest]) {
			hold = append(hold, n.desc.Digest)
		}
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

// writeBack records the destination repository in the distribution-source
// label of everything below root that the store has.
func (s *Service) writeBack(ctx context.Context, t *pushTarget, root ocispec.Descriptor, repo *registry.Repository) {
	var digests []digest.Digest
	for _, n := range t.g.below(root.Digest) {
		if n.present && t.virtual[n.desc.Digest] == nil {
			digests = append(digests, n.desc.Digest)
		}
	}
	err := s.batch(context.WithoutCancel(ctx), func(ctx context.Context) error {
		n := writeBackConcurrency
		if s.batched {
			n = 1
		}
		_, err := mount.WriteBack(ctx, t.cs, digests, repo.Registry, repo.Path, n)
		return err
	})
	if err != nil {
		log.G(ctx).WithError(err).Warn("could not record the pushed repository in the distribution-source labels")
	}
}

// sameEntries reports whether kept lists exactly the manifests of an
// index's entries, in their order.
func sameEntries(entries, kept []ocispec.Descriptor) bool {
	return slices.EqualFunc(entries, kept, func(a, b ocispec.Descriptor) bool { return a.Digest == b.Digest })
}

// newIndex makes an index of entries, with the original index's media
// type and annotations when the original target is an index.
func newIndex(original ocispec.Descriptor, entries []ocispec.Descriptor, annotations map[string]string) (ocispec.Descriptor, []byte, error) {
	mediaType := ocispec.MediaTypeImageIndex
	if images.IsIndexType(original.MediaType) {
		mediaType = original.MediaType
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaType, Manifests: entries, Annotations: annotations}
	b, err := json.Marshal(idx)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}, b, nil
}

// describePushError adds what was being done and, for an unreachable
// registry or an untrusted certificate, which host and what to check.
func describePushError(job pushJob, err error) error {
	host := reference.Domain(job.dest)
	switch {
	case registry.CertificateError(err):
		err = &CertificateError{Registry: host, Err: err}
	case registry.Unreachable(err):
		return fmt.Errorf("push %s to %s: registry %s is unreachable; check that it is running and the address is right: %w",
			job.img.Name, job.dest, host, err)
	}
	return fmt.Errorf("push %s to %s: %w", job.img.Name, job.dest, err)
}

// reduction describes pushing sel instead of job's image target.
func (s *Service) reduction(job pushJob, sel selection, reason string, o *transferOptions) *progress.Reduction {
	r := &progress.Reduction{Image: job.img.Name, Original: job.img.Target, Pushed: sel.Descriptor, NewIndex: sel.NewIndex,
		Platforms: platformNames(platformsOf(sel.Manifests)), Missing: platformNames(sel.Missing), AttestationsLeft: sel.AttestationsLeft, Reason: reason,
		Asked: len(o.platforms) > 0 || o.all}
	host := platforms.Only(s.host)
	if !slices.ContainsFunc(sel.Manifests, func(m ImageManifest) bool { return host.Match(m.Platform) }) {
		r.HostPlatform = platforms.Format(s.host)
	}
	return r
}

func platformNames(ps []ocispec.Platform) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, platforms.Format(p))
	}
	return out
}
