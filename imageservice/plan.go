package imageservice

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/images"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/registry"
	"github.com/ctrpush/ctrpush/progress"
)

// PlannedAction is what a push would do with one blob or manifest.
type PlannedAction string

// Planned actions.
const (
	ActionUpload PlannedAction = "upload" // bytes would be sent
	ActionMount  PlannedAction = "mount"  // mounted from another repository
	ActionExists PlannedAction = "exists" // already in the destination
	ActionPut    PlannedAction = "put"    // a manifest or index would be PUT
	// ActionMissing: not in the store and no mount source has it; the push
	// would fail on it (or, for an index with no platform asked for,
	// push the host's manifest instead).
	ActionMissing PlannedAction = "missing"
	// ActionSkip: a non-distributable (foreign) layer, not uploaded.
	ActionSkip PlannedAction = "skip"
)

// PlannedBlob is one line of a plan.
type PlannedBlob struct {
	Descriptor ocispec.Descriptor
	Action     PlannedAction
	// From, with ActionMount: the source repository; with ActionUpload or
	// ActionMissing: a repository the push will try to mount from whose
	// answer the dry run could not get ("mount from X, may upload").
	From string
	// Via, with ActionUpload: how the bytes would go when asked for
	// ("4 chunks of 8MiB"); empty for the usual single PUT (or single
	// request, where the registry takes it: known only when pushing).
	Via string
	// Referrer: part of a referrer pushed after the image (WithReferrers).
	Referrer bool
}

// PushPlan is what Push would do for one reference.
type PushPlan struct {
	Reference, Repository, Tag string
	// Descriptor is what the tag would point to.
	Descriptor ocispec.Descriptor
	NewIndex   bool
	// Blobs, children before parents, each digest once.
	Blobs []PlannedBlob
	// UploadBytes is the total of the blobs to upload.
	UploadBytes int64
	// Reduction is set when what would be pushed is not the image's own
	// target (one manifest, or a new index of some platforms).
	Reduction *progress.Reduction
	// Referrers is how many referrers would go with the image
	// (WithReferrers); ReferrersIndexes the tag-schema tags that would be
	// created or updated (a registry without the referrers API).
	Referrers        int
	ReferrersIndexes []string
	// Compression, with WithCompression, says what the push would
	// convert. The push sends the converted image, whose digests are
	// known only once converted: Blobs and Descriptor are the image as
	// the store holds it.
	Compression *PlannedCompression
	// ReferrersAPIUnknown: the registry could not say whether it has the
	// referrers API (asked within a repository that does not exist yet,
	// it answered NAME_UNKNOWN, as registries with the API and some without
	// do), so ReferrersIndexes are written only if it has none.
	ReferrersAPIUnknown bool
	// Signatures say what each signer (WithSigner) would sign and where
	// its signature would go. With compression the signed digest is the
	// converted image's, known only once converted.
	Signatures []PlannedSignature
}

// PlannedSignature is a signature a push would make and place.
type PlannedSignature struct {
	Format, Signer string
	// Subject is the digest that would be signed (what the tag would
	// name); Where where the signature would go.
	Subject digest.Digest
	Where   string
}

// PlannedCompression is what a push with WithCompression would convert.
type PlannedCompression struct {
	Format string
	Level  int
	// Layers would be compressed now; Reused were by an earlier push, and
	// the store keeps their copies.
	Layers, Reused int
}

// planCompression counts the layers below root a push would convert.
func (s *Service) planCompression(ctx context.Context, t *pushTarget, o *transferOptions) *PlannedCompression {
	c := o.compression
	pc := &PlannedCompression{Format: c.Format, Level: c.Level}
	key := convertedLabel(c)
	for _, n := range t.g.below(t.sel.Descriptor.Digest) {
		from, ok := layerCompression(n.desc.MediaType)
		if !ok || from == c.Format && !c.Force {
			continue
		}
		if d, err := digest.Parse(n.info.Labels[key]); err == nil {
			if _, err := s.content.Info(ctx, d); err == nil {
				pc.Reused++
				continue
			}
		}
		pc.Layers++
	}
	return pc
}

// PlanPush resolves what Push with the same arguments would do and asks
// the registry (HEAD and GET requests only) what exists, without changing
// anything in the store or the registry: per blob whether it would be
// uploaded, mounted (from where) or skipped. It takes the same decisions
// as Push from the same labels; where Push asks the registry to mount a
// blob, PlanPush asks whether the source repository has it.
func (s *Service) PlanPush(ctx context.Context, source string, opts ...TransferOption) ([]PushPlan, error) {
	o, err := newTransferOptions(opts)
	if err != nil {
		return nil, err
	}
	ctx = s.withNamespace(ctx)
	groups, err := s.pushJobs(ctx, source, o.dests)
	if err != nil {
		return nil, err
	}
	var plans []PushPlan
	repos := repositories{}
	for _, grp := range groups {
		for _, job := range grp.jobs() {
			repo, err := repos.forJob(job, &o)
			if err != nil {
				return plans, err
			}
			p, err := s.planOne(ctx, repo, job, grp.registries(), &o)
			if err != nil {
				return plans, describePushError(job, err)
			}
			plans = append(plans, p)
		}
	}
	return plans, nil
}

// planProber predicts a mount by asking whether the source has the blob.
type planProber struct{ repo *registry.Repository }

func (p planProber) exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return p.repo.BlobExists(ctx, desc.Digest)
}

func (p planProber) mount(ctx context.Context, desc ocispec.Descriptor, from string) (bool, error) {
	return p.repo.BlobExistsIn(ctx, from, desc.Digest)
}

// planOne plans job's push; registries are those of every destination of
// the push, which share one platform selection.
func (s *Service) planOne(ctx context.Context, repo *registry.Repository, job pushJob, registries []string, o *transferOptions) (PushPlan, error) {
	plan := PushPlan{Reference: job.dest.String(), Repository: job.dest.Name(), Tag: job.dest.Tag()}
	t, err := s.prepare(ctx, job.img, registries, o, false, nil)
	if err != nil {
		return plan, err
	}
	sel := t.sel
	if sel.Descriptor.Digest != job.img.Target.Digest {
		plan.Reduction = s.reduction(job, sel, "", o)
	}
	if err := s.planRoot(ctx, repo, t, sel, o, &plan); err != nil {
		return plan, err
	}
	// As the push does: an index whose content is missing (and could not
	// be mounted) falls back to the host's manifest when no platform was
	// asked for; the plan says so and plans that instead.
	var lacking *PlannedBlob
	for i, b := range plan.Blobs {
		if b.Action == ActionMissing && lacking == nil {
			lacking = &plan.Blobs[i]
		}
	}
	if lacking != nil && images.IsIndexType(sel.Descriptor.MediaType) && len(o.platforms) == 0 && !o.all {
		if reduced, ok := s.fallback(ctx, t); ok {
			plan.Reduction = s.reduction(job, reduced, fmt.Sprintf("Content of %s is missing locally (%s)", job.img.Name, lacking.Descriptor.Digest), o)
			plan.Blobs, plan.UploadBytes, plan.NewIndex = nil, 0, false
			if err := s.planRoot(ctx, repo, t, reduced, o, &plan); err != nil {
				return plan, err
			}
		}
	}
	if o.referrers {
		if err := s.planReferrers(ctx, repo, t, o, &plan); err != nil {
			return plan, err
		}
	}
	if o.compression != nil {
		plan.Compression = s.planCompression(ctx, t, o)
	}
	for _, sg := range o.signers {
		plan.Signatures = append(plan.Signatures, PlannedSignature{Format: sg.Format(), Signer: sg.String(), Subject: plan.Descriptor.Digest, Where: sg.Where(plan.Descriptor.Digest)})
	}
	return plan, nil
}

// planReferrers plans, after the image, its referrers as the push sends
// them: each digest once, by digest, and the tag-schema indexes it writes.
func (s *Service) planReferrers(ctx context.Context, repo *registry.Repository, t *pushTarget, o *transferOptions, plan *PushPlan) error {
	planned := map[string]bool{}
	for _, b := range plan.Blobs {
		planned[b.Descriptor.Digest.String()] = true
	}
	for _, level := range t.g.referrerLevels(plan.Descriptor.Digest) {
		for _, grp := range level {
			for _, r := range grp.refs {
				plan.Referrers++
				for _, n := range t.g.below(r.Digest) {
					if planned[n.desc.Digest.String()] {
						continue
					}
					planned[n.desc.Digest.String()] = true
					pb, err := planNode(ctx, repo, n, o, false, false, plan)
					if err != nil {
						return err
					}
					pb.Referrer = true
					plan.Blobs = append(plan.Blobs, pb)
				}
			}
			if _, added, err := mergedReferrersIndex(ctx, repo, grp); err != nil {
				return err
			} else if added > 0 {
				plan.ReferrersIndexes = append(plan.ReferrersIndexes, registry.ReferrersTag(grp.subject))
				plan.ReferrersAPIUnknown = plan.ReferrersAPIUnknown || !repo.ReferrersAPIKnown()
			}
		}
	}
	return nil
}

// planRoot plans pushing sel's root and everything below it.
func (s *Service) planRoot(ctx context.Context, repo *registry.Repository, t *pushTarget, sel selection, o *transferOptions, plan *PushPlan) error {
	root := sel.Descriptor
	plan.Descriptor, plan.NewIndex = root, sel.NewIndex
	done, newRepo, err := tagState(ctx, repo, plan.Tag, root)
	if err != nil {
		return err
	}
	for _, n := range t.g.below(root.Digest) {
		if done {
			plan.Blobs = append(plan.Blobs, PlannedBlob{Descriptor: n.desc, Action: ActionExists})
			continue
		}
		pb, err := planNode(ctx, repo, n, o, newRepo, n.desc.Digest == root.Digest, plan)
		if err != nil {
			return err
		}
		plan.Blobs = append(plan.Blobs, pb)
	}
	return nil
}

// planNode plans one node as the push takes it: a manifest is PUT unless
// the registry has it (not asked for the root PUT by tag, tagged, nor in a
// new repository); a blob is skipped, or found, mounted or uploaded (its
// bytes counted in plan).
func planNode(ctx context.Context, repo *registry.Repository, n *node, o *transferOptions, newRepo, tagged bool, plan *PushPlan) (PlannedBlob, error) {
	pb := PlannedBlob{Descriptor: n.desc}
	switch {
	case n.isManifest():
		pb.Action = ActionPut
		if !n.present {
			pb.Action = ActionMissing
		} else if !tagged && !newRepo {
			if have, err := repo.ManifestDigest(ctx, n.desc.Digest.String(), n.desc.MediaType); err == nil && have == n.desc.Digest {
				pb.Action = ActionExists
			}
		}
	case skipped(n, o):
		pb.Action = ActionSkip
	default:
		outcome, from, err := resolveBlob(ctx, planProber{repo}, n.desc, stepsFor(n, repo.Registry, repo.Path, newRepo))
		if err != nil {
			return pb, err
		}
		switch outcome {
		case outcomeExists:
			pb.Action = ActionExists
		case outcomeMounted:
			pb.Action, pb.From = ActionMount, from
		case outcomeUpload:
			// From set: a mount from there might work (the source
			// could not be asked); the bytes count as uploaded.
			pb.Action, pb.From = ActionUpload, from
			plan.UploadBytes += n.desc.Size
			if c := o.chunkSize(repo.Registry); c > 0 {
				pb.Via = fmt.Sprintf("%d chunks of %s", (n.desc.Size+c-1)/c, registry.SizeString(c))
			}
		default:
			pb.Action, pb.From = ActionMissing, from
		}
	}
	return pb, nil
}
