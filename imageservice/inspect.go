package imageservice

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageDetails describes one local image for inspection.
type ImageDetails struct {
	// Image is the record Image found; Names every name with its target.
	Image images.Image
	Names []string
	// Manifest is the platform manifest described below: the one
	// ForPlatform asked for, else the best match for the host among those
	// whose content is all present. When none is present (and no platform
	// was asked for), Manifest and Config are zero.
	Manifest ocispec.Descriptor
	Platform ocispec.Platform
	Config   ocispec.Image
	// Manifests lists every manifest of the image (attestations included).
	Manifests []ImageManifest
	// Size is the bytes of the image's content present in the store.
	Size int64
}

// ImageOption narrows what Inspect, History and Save describe.
type ImageOption func(*imageOptions)

type imageOptions struct {
	platform *ocispec.Platform
	// platforms are Save's, with ForPlatforms (more than one).
	platforms []ocispec.Platform
}

// ForPlatforms is, for Save, ForPlatform of several platforms: each image
// is saved with its own target (its index, unchanged) and the content of
// those platforms only; each must be in the image with all its content.
// One platform is ForPlatform. Inspect and History take ForPlatform only.
func ForPlatforms(ps ...ocispec.Platform) ImageOption {
	return func(o *imageOptions) {
		if len(ps) == 1 {
			ForPlatform(ps[0])(o)
			return
		}
		o.platform = nil
		o.platforms = nil
		for _, p := range ps {
			o.platforms = append(o.platforms, platforms.Normalize(p))
		}
	}
}

// ForPlatform picks the manifest of exactly platform p (os, architecture
// and variant; no fallback to a compatible one) instead of the host's
// best match. An image without such a manifest is a PlatformNotFoundError.
func ForPlatform(p ocispec.Platform) ImageOption {
	return func(o *imageOptions) {
		n := platforms.Normalize(p)
		o.platform = &n
		o.platforms = nil
	}
}

func newImageOptions(opts []ImageOption) imageOptions {
	var o imageOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Inspect describes the image name (see Image for the names it takes).
func (s *Service) Inspect(ctx context.Context, name string, opts ...ImageOption) (ImageDetails, error) {
	o := newImageOptions(opts)
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
	var best ImageManifest
	if o.platform != nil {
		if best, err = s.platformManifest(ctx, img, d.Manifests, *o.platform); err != nil {
			return d, err
		}
	} else {
		var ok bool
		if best, ok = bestManifest(d.Manifests, s.host); !ok {
			return d, nil
		}
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

// platformManifest is the manifest of ms for exactly p whose config is in
// the store, one with all its content preferred.
func (s *Service) platformManifest(ctx context.Context, img images.Image, ms []ImageManifest, p ocispec.Platform) (ImageManifest, error) {
	match := platforms.OnlyStrict(p)
	var found *ImageManifest
	for i, m := range ms {
		if m.Attestation || !match.Match(m.Platform) || len(m.blobs) == 0 {
			continue
		}
		if _, err := s.content.Info(ctx, m.blobs[0].Digest); err != nil {
			continue
		}
		if found == nil || m.Available && !found.Available {
			found = &ms[i]
		}
	}
	if found == nil {
		var present, missing []ocispec.Platform
		for _, m := range ms {
			switch {
			case m.Attestation:
			case m.Available:
				present = append(present, m.Platform)
			default:
				missing = append(missing, m.Platform)
			}
		}
		return ImageManifest{}, &PlatformNotFoundError{Image: img.Name, Wanted: []ocispec.Platform{p}, Present: present, Missing: missing}
	}
	return *found, nil
}
