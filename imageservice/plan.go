package imageservice

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/mount"
)

// PlannedAction is what a push would do with one blob or manifest.
type PlannedAction string

// Planned actions.
const (
	ActionUpload PlannedAction = "upload" // bytes would be sent
	ActionMount  PlannedAction = "mount"  // mounted from another repository
	ActionExists PlannedAction = "exists" // already in the destination
	ActionPut    PlannedAction = "put"    // a manifest or index would be PUT
)

// PlannedBlob is one line of a plan.
type PlannedBlob struct {
	Descriptor ocispec.Descriptor
	Action     PlannedAction
	From       string // with ActionMount: the source repository
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
}

// PlanPush resolves what Push with the same arguments would do and asks
// the registry (HEAD requests only) what exists, without changing anything
// in the store or the registry: per blob whether it would be uploaded,
// mounted (from where) or skipped. A blob counts as mountable when a
// candidate repository of its source labels has it.
func (s *Service) PlanPush(ctx context.Context, source string, opts ...TransferOption) ([]PushPlan, error) {
	o, err := newTransferOptions(opts)
	if err != nil {
		return nil, err
	}
	ctx = s.withNamespace(ctx)
	jobs, err := s.pushJobs(ctx, source, o.dest)
	if err != nil {
		return nil, err
	}
	var plans []PushPlan
	for _, job := range jobs {
		p, err := s.planOne(ctx, job, &o)
		if err != nil {
			return plans, describePushError(job, err)
		}
		plans = append(plans, p)
	}
	return plans, nil
}

func (s *Service) planOne(ctx context.Context, job pushJob, o *transferOptions) (PushPlan, error) {
	plan := PushPlan{Reference: job.dest.String(), Repository: job.dest.Name(), Tag: job.dest.Tag()}
	registry, path := reference.Domain(job.dest), reference.Path(job.dest)
	store, sel, err := s.selectFor(ctx, newPushStore(s.content), job, o)
	if err != nil {
		return plan, err
	}
	virtual := map[digest.Digest][]byte{}
	if sel.NewIndex {
		desc, b, _, err := newIndex(job.img.Target, sel.Manifests)
		if err != nil {
			return plan, err
		}
		sel.Descriptor = desc
		virtual[desc.Digest] = b
		plan.NewIndex = true
	}
	plan.Descriptor = sel.Descriptor
	bc, err := newBlobClient(o.hosts, registry, path)
	if err != nil {
		return plan, err
	}

	seen := map[digest.Digest]bool{}
	var walk func(desc ocispec.Descriptor, inherited map[string]string, root bool) error
	walk = func(desc ocispec.Descriptor, inherited map[string]string, root bool) error {
		if seen[desc.Digest] {
			return nil
		}
		seen[desc.Digest] = true
		var labels map[string]string
		if info, err := store.Info(ctx, desc.Digest); err == nil {
			labels = info.Labels
		}
		sources := mount.MergeSources(inherited, desc.Annotations, labels)
		if images.IsManifestType(desc.MediaType) || images.IsIndexType(desc.MediaType) {
			var children []ocispec.Descriptor
			if b, ok := virtual[desc.Digest]; ok {
				var idx ocispec.Index
				err = json.Unmarshal(b, &idx)
				children = idx.Manifests
			} else {
				children, err = images.Children(ctx, store, desc)
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", desc.Digest, err)
			}
			for _, c := range children {
				if err := walk(c, sources, false); err != nil {
					return err
				}
			}
			ref := desc.Digest.String()
			if root {
				ref = job.dest.Tag()
			}
			have, err := bc.manifestDigest(ctx, ref, desc.MediaType)
			if err != nil {
				return err
			}
			action := ActionPut
			if have == desc.Digest {
				action = ActionExists
			}
			plan.Blobs = append(plan.Blobs, PlannedBlob{Descriptor: desc, Action: action})
			return nil
		}
		// As the push does: a HEAD unless the labels name other
		// repositories to mount from and not the destination.
		candidates := mount.Candidates(sources, registry, path)
		if len(candidates) == 0 || mount.Listed(sources, registry, path) {
			ok, err := bc.exists(ctx, desc.Digest)
			if err != nil {
				return err
			}
			if ok {
				plan.Blobs = append(plan.Blobs, PlannedBlob{Descriptor: desc, Action: ActionExists})
				return nil
			}
		}
		for _, from := range candidates {
			if ok, err := bc.existsIn(ctx, from, desc.Digest); err == nil && ok {
				plan.Blobs = append(plan.Blobs, PlannedBlob{Descriptor: desc, Action: ActionMount, From: from})
				return nil
			}
		}
		plan.Blobs = append(plan.Blobs, PlannedBlob{Descriptor: desc, Action: ActionUpload})
		plan.UploadBytes += desc.Size
		return nil
	}
	return plan, walk(sel.Descriptor, nil, true)
}
