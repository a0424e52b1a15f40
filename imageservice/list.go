package imageservice

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageSummary describes one local image.
type ImageSummary struct {
	Name   string
	Target ocispec.Descriptor
	// Created is when the name was created in this store.
	Created time.Time
	// Present lists the platforms whose content is all in the store;
	// Missing those the image lists but lacks. Attestations are left out.
	Present, Missing []ocispec.Platform
	// Size is the bytes of the image's content present in the store,
	// each blob counted once.
	Size int64
	// Referrers is how many referrers (signatures, SBOMs, and theirs)
	// the store keeps linked to the image's manifests.
	Referrers int
	// Err is set when the image's index itself cannot be read.
	Err error
}

// Images lists the local images, sorted by name.
func (s *Service) Images(ctx context.Context) ([]ImageSummary, error) {
	ctx = s.withNamespace(ctx)
	imgs, err := s.images.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	out := make([]ImageSummary, 0, len(imgs))
	for _, img := range imgs {
		sum := ImageSummary{Name: img.Name, Target: img.Target, Created: img.CreatedAt}
		ms, err := walkManifests(ctx, s.content, img.Target)
		if err != nil {
			sum.Err = err
			out = append(out, sum)
			continue
		}
		sum.Size = s.presentSize(ctx, img.Target, ms)
		roots := []digest.Digest{img.Target.Digest}
		for _, m := range ms {
			roots = append(roots, m.Descriptor.Digest)
		}
		sum.Referrers = countReferrers(ctx, s.content, roots)
		for _, m := range ms {
			if m.Attestation {
				continue
			}
			if m.Available {
				sum.Present = append(sum.Present, m.Platform)
			} else {
				sum.Missing = append(sum.Missing, m.Platform)
			}
		}
		out = append(out, sum)
	}
	return out, nil
}

// presentSize is the bytes of target and its manifests' blobs that are in
// the store, each blob counted once.
func (s *Service) presentSize(ctx context.Context, target ocispec.Descriptor, ms []ImageManifest) int64 {
	var size int64
	counted := map[digest.Digest]bool{}
	add := func(d ocispec.Descriptor) {
		if counted[d.Digest] {
			return
		}
		if info, err := s.content.Info(ctx, d.Digest); err == nil {
			counted[d.Digest] = true
			size += info.Size
		}
	}
	add(target)
	for _, m := range ms {
		add(m.Descriptor)
		for _, b := range m.blobs {
			add(b)
		}
	}
	return size
}

// namesOf lists, sorted, every image name whose target is d.
func (s *Service) namesOf(ctx context.Context, d digest.Digest) ([]string, error) {
	all, err := s.images.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var names []string
	for _, img := range all {
		if img.Target.Digest == d {
			names = append(names, img.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}
