package imageservice

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Save writes the images names (see Image for the names it takes) to w
// as one tar archive, as docker save does: an OCI image layout (index.json
// naming each image, blobs/) with Docker's manifest.json, which Import,
// docker load and ctr images import read back. An image given by name
// keeps that name; one given by ID is saved without a name.
//
// Each image is saved whole — its index and every platform whose content
// is in the store (a platform listed but absent is left out, its entry
// kept) — with manifest.json pointing at the host's platform. ForPlatform
// saves only the manifest of that platform, as the image's target;
// ForPlatforms of several keeps the index and saves only their content.
// Non-distributable layers are not saved. Every name is found before the
// first byte is written, and a lease holds the images' content until the
// last.
func (s *Service) Save(ctx context.Context, w io.Writer, names []string, opts ...ImageOption) error {
	o := newImageOptions(opts)
	ctx = s.withNamespace(ctx)
	if len(names) == 0 {
		return fmt.Errorf("save: no image named: %w", errdefs.ErrInvalidArgument)
	}
	return s.withLease(ctx, func(ctx context.Context) error { return s.save(ctx, w, names, o) })
}

// save is Save under a lease that holds each image's content, so an image
// removed meanwhile is still written whole.
func (s *Service) save(ctx context.Context, w io.Writer, names []string, o imageOptions) error {
	eopts := []archive.ExportOpt{archive.WithSkipNonDistributableBlobs()}
	for _, name := range names {
		img, byID, err := s.lookup(ctx, name)
		if err != nil {
			return err
		}
		g, err := walkGraph(ctx, s.content, img.Target)
		if err != nil {
			return err
		}
		if err := s.holdGraph(ctx, g); err != nil {
			return err
		}
		target := img.Target
		if len(o.platforms) > 0 {
			ms, err := walkManifests(ctx, s.content, img.Target)
			if err != nil {
				return err
			}
			for _, p := range o.platforms {
				m, err := s.platformManifest(ctx, img, ms, p)
				if err != nil {
					return err
				}
				if !m.Available {
					return &MissingContentError{Image: img.Name, Missing: m.Missing}
				}
			}
		}
		if o.platform != nil {
			ms, err := walkManifests(ctx, s.content, img.Target)
			if err != nil {
				return err
			}
			m, err := s.platformManifest(ctx, img, ms, *o.platform)
			if err != nil {
				return err
			}
			if !m.Available {
				return &MissingContentError{Image: img.Name, Missing: m.Missing}
			}
			target = ocispec.Descriptor{MediaType: m.Descriptor.MediaType, Digest: m.Descriptor.Digest, Size: m.Descriptor.Size}
		}
		if byID {
			eopts = append(eopts, archive.WithManifest(target))
		} else {
			eopts = append(eopts, archive.WithManifest(target, img.Name))
		}
	}
	switch {
	case o.platform != nil:
		eopts = append(eopts, archive.WithPlatform(platforms.OnlyStrict(*o.platform)))
	case len(o.platforms) > 0:
		// Those platforms only; manifest.json names the host's best.
		eopts = append(eopts, archive.WithPlatform(somePreferred{want: platforms.Any(o.platforms...), host: platforms.Only(s.host)}), archive.WithSkipMissing(s.content))
	default:
		eopts = append(eopts, archive.WithPlatform(hostPreferred{host: platforms.Only(s.host)}), archive.WithSkipMissing(s.content))
	}
	if err := archive.Export(ctx, s.content, w, eopts...); err != nil {
		return fmt.Errorf("save %v: %w", names, err)
	}
	return nil
}

// somePreferred matches the platforms want matches, those the host can
// run first (best first).
type somePreferred struct {
	want platforms.Matcher
	host platforms.MatchComparer
}

func (m somePreferred) Match(p ocispec.Platform) bool { return m.want.Match(p) }

func (m somePreferred) Less(a, b ocispec.Platform) bool {
	return hostPreferred{host: m.host}.Less(a, b)
}
