package imageservice

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageDetails describes one local image for inspection.
type ImageDetails struct {
	// Image is the record Image found; Names every name with its target.
	Image images.Image
	Names []string
	// Manifest is the platform manifest described below: the best match
	// for the host among those whose content is all present. When none is
	// present, Manifest and Config are zero.
	Manifest ocispec.Descriptor
	Platform ocispec.Platform
	Config   ocispec.Image
	// Manifests lists every manifest of the image (attestations included).
	Manifests []ImageManifest
	// Size is the bytes of the image's content present in the store.
	Size int64
}

// Inspect describes the image name (see Image for the names it takes).
func (s *Service) Inspect(ctx context.Context, name string) (ImageDetails, error) {
	ctx = s.withNamespace(ctx)
	img, err := s.Image(ctx, name)
	if err != nil {
		return ImageDetails{}, err
	}
	d := ImageDetails{Image: img}
	if d.Names, err = s.namesOf(ctx, img.Target.Digest); err != nil {
		return d, err
	}
	if d.Manifests, err = walkManifests(ctx, s.content, img.Target); err != nil {
		return d, err
	}
	d.Size = s.presentSize(ctx, img.Target, d.Manifests)
	best, ok := bestManifest(d.Manifests, s.host)
	if !ok {
		return d, nil
	}
	d.Manifest, d.Platform = best.Descriptor, best.Platform
	if len(best.blobs) > 0 {
		b, err := content.ReadBlob(ctx, s.content, best.blobs[0])
		if err != nil {
			return d, fmt.Errorf("read config %s of %s: %w", best.blobs[0].Digest, img.Name, err)
		}
		if err := json.Unmarshal(b, &d.Config); err != nil {
			return d, fmt.Errorf("decode config %s of %s: %w", best.blobs[0].Digest, img.Name, err)
		}
	}
	return d, nil
}
