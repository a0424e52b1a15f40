package imageservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/internal/registry"
	"github.com/ctrpush/ctrpush/internal/verify"
	"github.com/ctrpush/ctrpush/progress"
)

// LabelReferrerPrefix starts the label a subject (a manifest or index in
// the store) carries for each of its referrers (OCI 1.1 artifacts whose
// subject it is: signatures, SBOMs): the key ends with the referrer's
// digest ("sha256.<hex>"), the value is that digest. Being a
// containerd.io/gc.ref.content label, it keeps the referrer (and, through
// the referrer's own labels, its content) alive as long as the subject:
// no image record per referrer, and removing the image frees them.
const LabelReferrerPrefix = "containerd.io/gc.ref.content.referrer."

func referrerLabel(d digest.Digest) string {
	return LabelReferrerPrefix + d.Algorithm().String() + "." + d.Encoded()
}

// WithReferrers makes referrers travel with the image: Push (and
// PlanPush) sends, after the image, the referrers the store holds for the
// manifests pushed and the referrers of those, each after its subject;
// on a registry without the referrers API it creates or updates the tag
// schema's index (tag sha256-<hex>) of each subject, keeping every entry
// already listed there. Pull fetches the referrers of every manifest
// pulled (the referrers API, else the tag schema), recursively, with their
// content, and links them to their subject in the store. artifactTypes,
// when given, keep only the referrers of the image's own manifests with
// one of those artifact types; a kept referrer's own referrers all travel
// with it (a signature of an SBOM). Default: referrers stay behind.
func WithReferrers(artifactTypes ...string) TransferOption {
	return func(o *transferOptions) error {
		if err := CheckArtifactTypes(artifactTypes...); err != nil {
			return err
		}
		o.referrers = true
		o.referrerTypes = append(o.referrerTypes, artifactTypes...)
		return nil
	}
}

// CheckArtifactTypes says, as WithReferrers would, whether each of types
// can be an artifact type: an *OptionError for the first that cannot.
func CheckArtifactTypes(types ...string) error {
	for _, t := range types {
		if t == "" || strings.ContainsAny(t, " \t,") {
			return &OptionError{Option: "WithReferrers", Value: t, Err: errors.New("an artifact type is a media type (type/subtype)")}
		}
	}
	return nil
}

// wantedType reports whether a referrer of the image's own manifests with
// artifact type t is kept.
func (o *transferOptions) wantedType(t string) bool {
	return len(o.referrerTypes) == 0 || slices.Contains(o.referrerTypes, t)
}

// referrersIn lists, sorted, the referrers a subject's labels name.
func referrersIn(labels map[string]string) []digest.Digest {
	var out []digest.Digest
	for k, v := range labels {
		if strings.HasPrefix(k, LabelReferrerPrefix) {
			if d, err := digest.Parse(v); err == nil {
				out = append(out, d)
			}
		}
	}
	slices.Sort(out)
	return out
}

// describeReferrer reads manifest d from cs and returns its descriptor as a
// referrers index lists it (media type, artifact type, annotations) and
// its subject.
func describeReferrer(ctx context.Context, cs content.Store, d digest.Digest) (ocispec.Descriptor, *ocispec.Descriptor, error) {
	info, err := cs.Info(ctx, d)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	b, err := content.ReadBlob(ctx, cs, ocispec.Descriptor{Digest: d, Size: info.Size})
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return referrerDescriptor(d, b)
}

// referrerDescriptor describes manifest b (digest d) as a referrers index
// lists it: an artifact type from artifactType, else the config's media
// type (OCI distribution spec 1.1).
func referrerDescriptor(d digest.Digest, b []byte) (ocispec.Descriptor, *ocispec.Descriptor, error) {
	var m struct {
		MediaType    string              `json:"mediaType"`
		ArtifactType string              `json:"artifactType"`
		Config       *ocispec.Descriptor `json:"config"`
		Manifests    json.RawMessage     `json:"manifests"`
		Subject      *ocispec.Descriptor `json:"subject"`
		Annotations  map[string]string   `json:"annotations"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("decode manifest %s: %w", d, err)
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: d, Size: int64(len(b)), ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if desc.MediaType == "" {
		desc.MediaType = ocispec.MediaTypeImageManifest
		if m.Manifests != nil {
			desc.MediaType = ocispec.MediaTypeImageIndex
		}
	}
	if desc.ArtifactType == "" && m.Config != nil {
		desc.ArtifactType = m.Config.MediaType
	}
	return desc, m.Subject, nil
}

// walkReferrers adds to g the referrers the store links to g's manifests
// (and theirs, recursively), with their content; g.referrers lists them by
// subject. Only referrers of the image's own manifests are filtered by
// artifact type.
func (g *imageGraph) walkReferrers(ctx context.Context, cs content.Store, o *transferOptions) error {
	g.referrers = map[digest.Digest][]ocispec.Descriptor{}
	return walkLevels(g.presentManifests(g.order), func(s digest.Digest, depth int) ([]digest.Digest, error) {
		n := g.nodes[s]
		if n == nil || !n.present {
			return nil, nil
		}
		var next []digest.Digest
		for _, rd := range referrersIn(n.info.Labels) {
			desc, _, err := describeReferrer(ctx, cs, rd)
			if errdefs.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("referrer %s of %s: %w", rd, s, err)
			}
			if depth == 0 && !o.wantedType(desc.ArtifactType) {
				continue
			}
			before := len(g.order)
			if err := g.visit(ctx, cs, desc, nil, 0); err != nil {
				return nil, err
			}
			for _, added := range g.order[before:] {
				added.referrer = true
			}
			g.referrers[s] = append(g.referrers[s], desc)
			next = append(next, g.manifestsOf(rd)...)
		}
		return next, nil
	})
}

// walkLevels visits subjects a level at a time, each once: start (depth
// 0), then the subjects visiting those returned (depth 1), and so on — the
// one breadth-first walk of referrers, whether they come from the store's
// labels, an image graph or a registry.
func walkLevels(start []digest.Digest, visit func(subject digest.Digest, depth int) (next []digest.Digest, err error)) error {
	seen := map[digest.Digest]bool{}
	for level, depth := start, 0; len(level) > 0; depth++ {
		var next []digest.Digest
		for _, s := range level {
			if seen[s] {
				continue
			}
			seen[s] = true
			more, err := visit(s, depth)
			if err != nil {
				return err
			}
			next = append(next, more...)
		}
		level = next
	}
	return nil
}

// presentManifests lists the digests of the manifests and indexes among
// nodes that the store has.
func (g *imageGraph) presentManifests(nodes []*node) []digest.Digest {
	var out []digest.Digest
	for _, n := range nodes {
		if n.present && n.isManifest() {
			out = append(out, n.desc.Digest)
		}
	}
	return out
}

// referrerGroup is the referrers of one subject.
type referrerGroup struct {
	subject digest.Digest
	refs    []ocispec.Descriptor
}

// referrerLevels lists the referrers of the manifests below root, a level
// at a time: the referrers of the image's manifests, then theirs, and so
// on; each subject once, in graph order.
func (g *imageGraph) referrerLevels(root digest.Digest) [][]referrerGroup {
	var start []digest.Digest
	for _, n := range g.below(root) {
		if n.isManifest() {
			start = append(start, n.desc.Digest)
		}
	}
	var levels [][]referrerGroup
	_ = walkLevels(start, func(s digest.Digest, depth int) ([]digest.Digest, error) {
		refs := g.referrers[s]
		if len(refs) == 0 {
			return nil, nil
		}
		for len(levels) <= depth {
			levels = append(levels, nil) // a subject at depth d is a referrer of depth d-1's: no level stays empty
		}
		levels[depth] = append(levels[depth], referrerGroup{subject: s, refs: refs})
		var next []digest.Digest
		for _, r := range refs {
			next = append(next, g.manifestsOf(r.Digest)...)
		}
		return next, nil
	})
	return levels
}

// manifestsOf lists referrer r and, when it is an index (a signature
// bundle), the manifests below it: each may have referrers of its own.
func (g *imageGraph) manifestsOf(r digest.Digest) []digest.Digest {
	out := []digest.Digest{r}
	for _, n := range g.below(r) {
		if n.desc.Digest != r && n.present && n.isManifest() {
			out = append(out, n.desc.Digest)
		}
	}
	return out
}

// labelIndexChild starts the label containerd gives an index for each of
// its manifests (images.ChildGCLabels).
const labelIndexChild = "containerd.io/gc.ref.content.m."

// countReferrers counts the referrers the store links, directly or
// through other referrers (and the manifests of a referrer that is an
// index), to roots.
func countReferrers(ctx context.Context, cs content.Store, roots []digest.Digest) int {
	counted := map[digest.Digest]bool{}
	_ = walkLevels(roots, func(d digest.Digest, _ int) ([]digest.Digest, error) {
		info, err := cs.Info(ctx, d)
		if err != nil {
			return nil, nil
		}
		var next []digest.Digest
		for _, r := range referrersIn(info.Labels) {
			counted[r] = true
			next = append(next, r)
		}
		for k, v := range info.Labels {
			if strings.HasPrefix(k, labelIndexChild) {
				if c, err := digest.Parse(v); err == nil {
					next = append(next, c)
				}
			}
		}
		return next, nil
	})
	for _, r := range roots {
		delete(counted, r) // a root is no referrer of its own image
	}
	return len(counted)
}

// linkReferrer labels subject in cs with referrer, so the referrer lives as
// long as the subject.
func linkReferrer(ctx context.Context, cs content.Store, subject, referrer digest.Digest) error {
	key := referrerLabel(referrer)
	_, err := cs.Update(ctx, content.Info{Digest: subject, Labels: map[string]string{key: referrer.String()}}, "labels."+key)
	if err != nil {
		return fmt.Errorf("link referrer %s to %s: %w", referrer, subject, err)
	}
	return nil
}

// pushReferrers pushes, after the image whose root is root, the referrers
// of its manifests a level at a time, each with its content (children
// first, through the same graph push as the image) and PUT by digest; then,
// unless the registry keeps referrers itself (the referrers API), it
// updates each subject's tag-schema index. It returns how many referrers
// it pushed (or found there).
func (s *Service) pushReferrers(ctx context.Context, l *leg, t *pushTarget, root ocispec.Descriptor, o *transferOptions) (int, error) {
	levels := t.g.referrerLevels(root.Digest)
	count := 0
	for _, level := range levels {
		for _, grp := range level {
			count += len(grp.refs)
		}
	}
	if count == 0 {
		return 0, nil
	}
	o.sink.Emit(progress.Event{Message: fmt.Sprintf("Pushing %d referrer(s) of %s", count, root.Digest), Destination: l.label})
	// Referrers go by digest: no tag check to wait for.
	rl := &leg{dest: l.dest, check: imagePushed(), label: l.label}
	for _, level := range levels {
		if err := s.pushReferrerLevel(ctx, rl, t, level, o); err != nil {
			return 0, err
		}
		for _, grp := range level {
			if err := updateReferrersIndex(ctx, l.dest.repo, grp, o.sink, l.label); err != nil {
				return 0, err
			}
		}
	}
	return count, nil
}

// pushReferrerLevel pushes the referrers of one level side by side, each
// through its own graph push (its blobs, then its manifest), all of them
// within one bound of transfers in flight (--max-concurrent-uploads); a
// blob or manifest two of them share is sent once. The first that fails
// stops the others and is the error, naming the referrer and its subject.
func (s *Service) pushReferrerLevel(ctx context.Context, l *leg, t *pushTarget, level []referrerGroup, o *transferOptions) error {
	legs := []*leg{l}
	proto := &graphPush{legs: legs, g: t.g, cs: t.cs, virtual: t.virtual, o: o, shared: newLimiter(o, legs)}
	type job struct {
		r       ocispec.Descriptor
		subject digest.Digest
	}
	var jobs []job
	seen := map[digest.Digest]bool{}
	for _, grp := range level {
		for _, r := range grp.refs {
			if !seen[r.Digest] { // a referrer of two subjects of this level once
				seen[r.Digest] = true
				jobs = append(jobs, job{r, grp.subject})
			}
		}
	}
	pushed := make([]bool, len(jobs))
	errs := make([]error, len(jobs))
	eg, ectx := errgroup.WithContext(ctx)
	for i, j := range jobs {
		eg.Go(func() error {
			gp := *proto
			if err := gp.run(ectx, j.r); err != nil {
				errs[i] = fmt.Errorf("referrer %s of %s: %w", j.r.Digest, j.subject, err)
				return errs[i]
			}
			pushed[i] = true
			return nil
		})
	}
	err := eg.Wait()
	if errors.Is(err, context.Canceled) {
		// Stopped because another referrer failed: its error is the
		// level's (the group keeps whichever returned first).
		for _, e := range errs {
			if e != nil && !errors.Is(e, context.Canceled) {
				err = e
				break
			}
		}
	}
	for i, j := range jobs {
		if pushed[i] {
			s.writeBack(ctx, t, j.r, l.dest.repo)
		}
	}
	return err
}

// updateReferrersIndex makes the tag-schema index of grp.subject list
// grp.refs, unless the registry keeps referrers itself: entries already
// there stay, in their order, and ours are appended; when every one is
// listed already nothing is sent.
func updateReferrersIndex(ctx context.Context, repo *registry.Repository, grp referrerGroup, sink progress.Sink, label string) error {
	idx, added, err := mergedReferrersIndex(ctx, repo, grp)
	if err != nil || added == 0 {
		return err
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	tag := registry.ReferrersTag(grp.subject)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := repo.PutManifest(ctx, desc, b, tag, nil); err != nil {
		return err
	}
	sink.Emit(progress.Event{Message: fmt.Sprintf("Referrers index %s: %d listed, %d added (the registry has no referrers API)", tag, len(idx.Manifests), added), Destination: label})
	return nil
}

// mergedReferrersIndex is the tag-schema index of grp.subject with
// grp.refs added, and how many were added: none when the registry keeps
// referrers itself or the index lists every one already.
func mergedReferrersIndex(ctx context.Context, repo *registry.Repository, grp referrerGroup) (ocispec.Index, int, error) {
	api, err := repo.ServesReferrers(ctx, grp.subject)
	if err != nil {
		return ocispec.Index{}, 0, fmt.Errorf("ask %s for the referrers of %s: %w", repo.Name(), grp.subject, err)
	}
	if api {
		return ocispec.Index{}, 0, nil
	}
	ti, err := repo.ReferrersTagIndex(ctx, grp.subject)
	if err != nil {
		return ocispec.Index{}, 0, err
	}
	idx := ti.Index
	if !ti.Exists {
		idx = ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	}
	listed := map[digest.Digest]bool{}
	for _, m := range idx.Manifests {
		listed[m.Digest] = true
	}
	added := 0
	for _, r := range grp.refs {
		if !listed[r.Digest] {
			listed[r.Digest] = true
			idx.Manifests = append(idx.Manifests, r)
			added++
		}
	}
	if added == 0 {
		log.G(ctx).WithField("tag", registry.ReferrersTag(grp.subject)).Debug("referrers index lists every referrer already")
	}
	return idx, added, nil
}

// pullReferrers fetches the referrers of every manifest of the image
// whose target is target (and theirs, recursively) with their content,
// and links each to its subject. It returns how many it linked.
func (s *Service) pullReferrers(ctx context.Context, repo *registry.Repository, target ocispec.Descriptor, o *transferOptions, fetch func(context.Context, images.HandlerFunc, ocispec.Descriptor) error) (int, error) {
	g, err := walkGraph(ctx, s.content, target)
	if err != nil {
		return 0, err
	}
	count := 0
	err = walkLevels(g.presentManifests(g.order), func(subject digest.Digest, depth int) ([]digest.Digest, error) {
		refs, err := repo.Referrers(ctx, subject)
		if err != nil {
			return nil, err
		}
		sort.SliceStable(refs, func(i, j int) bool { return refs[i].Digest < refs[j].Digest })
		var next []digest.Digest
		for _, r := range refs {
			if !images.IsManifestType(r.MediaType) && !images.IsIndexType(r.MediaType) {
				continue
			}
			if depth == 0 && len(o.referrerTypes) > 0 {
				// What the list says is not always the manifest's
				// artifactType (go-containerregistry's registry lists
				// the config's media type): ask the manifest.
				t, err := artifactTypeOf(ctx, repo, r)
				if err != nil {
					return nil, fmt.Errorf("referrer %s of %s: %w", r.Digest, subject, err)
				}
				if !o.wantedType(t) {
					continue
				}
			}
			if err := fetch(ctx, images.ChildrenHandler(s.content), r); err != nil {
				return nil, fmt.Errorf("referrer %s of %s: %w", r.Digest, subject, err)
			}
			if err := linkReferrer(ctx, s.content, subject, r.Digest); err != nil {
				return nil, err
			}
			count++
			next = append(next, r.Digest)
			if images.IsIndexType(r.MediaType) {
				// A signature bundle: its manifests may have
				// referrers of their own.
				rg, err := walkGraph(ctx, s.content, r)
				if err != nil {
					return nil, fmt.Errorf("referrer %s of %s: %w", r.Digest, subject, err)
				}
				next = append(next, rg.manifestsOf(r.Digest)[1:]...)
			}
		}
		return next, nil
	})
	return count, err
}

// DropReason says why Import did not keep a referrer of an archive.
type DropReason string

const (
	// ReferrerSubjectAbsent: its subject is neither in the archive nor
	// in the store.
	ReferrerSubjectAbsent DropReason = "its subject is neither in the archive nor in the store"
	// ReferrerContentMissing: the archive lacks some of its content
	// (DroppedReferrer.Missing).
	ReferrerContentMissing DropReason = "the archive lacks some of its content"
	// ReferrerSubjectDropped: its subject is a referrer that was not
	// kept.
	ReferrerSubjectDropped DropReason = "its subject, a referrer, is not kept"
)

// DroppedReferrer is a referrer of an archive (an unnamed manifest or
// index with a subject) that Import did not keep.
type DroppedReferrer struct {
	// Referrer is its descriptor (digest, media type, artifact type).
	Referrer ocispec.Descriptor
	Subject  digest.Digest
	Reason   DropReason
	// Missing lists what the archive lacks of it
	// (ReferrerContentMissing).
	Missing []digest.Digest
}

// WithDroppedReferrers calls report for each referrer of the archive that
// Import does not keep, with the reason (default: a warning in the log).
// It is called before Import returns, whether or not the import then
// succeeds.
func WithDroppedReferrers(report func(DroppedReferrer)) ImportOption {
	return func(o *importOptions) { o.dropped = report }
}

// importReferrers links each unnamed manifest of an archive's index whose
// subject the store has to that subject, when the referrer's content is
// all there; referrers of referrers are linked the same way. The others
// are reported to report (logged without it).
func (s *Service) importReferrers(ctx context.Context, unnamed []ocispec.Descriptor, report func(DroppedReferrer)) error {
	type candidate struct {
		desc    ocispec.Descriptor
		subject digest.Digest
	}
	var keep []candidate
	dropped := map[digest.Digest]bool{}
	drop := func(d DroppedReferrer) {
		dropped[d.Referrer.Digest] = true
		if report != nil {
			report(d)
			return
		}
		log.G(ctx).WithFields(log.Fields{"digest": d.Referrer.Digest, "subject": d.Subject, "reason": d.Reason}).Warn("referrer in the archive not kept")
	}
	for _, u := range unnamed {
		if !images.IsManifestType(u.MediaType) && !images.IsIndexType(u.MediaType) {
			continue
		}
		desc, subject, err := describeReferrer(ctx, s.content, u.Digest)
		if errdefs.IsNotFound(err) || subject == nil {
			continue
		}
		if err != nil {
			return err
		}
		desc.MediaType = u.MediaType
		if _, err := s.content.Info(ctx, subject.Digest); err != nil {
			drop(DroppedReferrer{Referrer: desc, Subject: subject.Digest, Reason: ReferrerSubjectAbsent})
			continue
		}
		g, err := walkGraph(ctx, s.content, u)
		if err != nil {
			return err
		}
		var missing []digest.Digest
		for _, n := range g.order {
			if !n.present && !images.IsNonDistributable(n.desc.MediaType) {
				missing = append(missing, n.desc.Digest)
			}
		}
		if len(missing) > 0 {
			drop(DroppedReferrer{Referrer: desc, Subject: subject.Digest, Reason: ReferrerContentMissing, Missing: missing})
			continue
		}
		keep = append(keep, candidate{desc, subject.Digest})
	}
	// A referrer of one not kept would be kept by nothing.
	for more := true; more; {
		more = false
		for _, c := range keep {
			if dropped[c.subject] && !dropped[c.desc.Digest] {
				drop(DroppedReferrer{Referrer: c.desc, Subject: c.subject, Reason: ReferrerSubjectDropped})
				more = true
			}
		}
	}
	for _, c := range keep {
		if dropped[c.desc.Digest] {
			continue
		}
		if err := linkReferrer(ctx, s.content, c.subject, c.desc.Digest); err != nil {
			return err
		}
	}
	return nil
}

// artifactTypeOf reads referrer r's manifest from repo and says its
// artifact type.
func artifactTypeOf(ctx context.Context, repo *registry.Repository, r ocispec.Descriptor) (string, error) {
	if r.Size > 4<<20 {
		return "", fmt.Errorf("manifest of %d bytes (at most 4 MiB): %w", r.Size, errdefs.ErrInvalidArgument)
	}
	rc, err := repo.Fetch(ctx, r)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(verify.Reader(io.LimitReader(rc, r.Size+1), r.Digest, r.Size))
	if err != nil {
		return "", err
	}
	desc, _, err := referrerDescriptor(r.Digest, b)
	return desc.ArtifactType, err
}
