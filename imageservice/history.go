package imageservice

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HistoryEntry is one step of an image's build history.
type HistoryEntry struct {
	Created    time.Time // zero when the config does not say
	CreatedBy  string
	Comment    string
	EmptyLayer bool
	// Layer is the layer the step made, as the manifest lists it (its
	// Size is the compressed size); zero for an empty layer.
	Layer ocispec.Descriptor
}

// History lists the build history of the image name for the host's
// platform (or ForPlatform's), newest first, as docker history shows it:
// the config's history, each step that made a layer paired with the
// manifest's layer in order. A config without history gets one entry per
// layer (created when the image was).
func (s *Service) History(ctx context.Context, name string, opts ...ImageOption) ([]HistoryEntry, error) {
	ctx = s.withNamespace(ctx)
	d, err := s.Inspect(ctx, name, opts...)
	if err != nil {
		return nil, err
	}
	if d.Manifest.Digest == "" {
		return nil, &PlatformNotFoundError{Image: d.Image.Name, Wanted: []ocispec.Platform{s.host}, Missing: platformsOf(d.Manifests)}
	}
	b, err := content.ReadBlob(ctx, s.content, d.Manifest)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s of %s: %w", d.Manifest.Digest, d.Image.Name, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest %s of %s: %w", d.Manifest.Digest, d.Image.Name, err)
	}
	var out []HistoryEntry
	layers := m.Layers
	if len(d.Config.History) == 0 {
		for _, l := range layers {
			e := HistoryEntry{Layer: l}
			if d.Config.Created != nil {
				e.Created = *d.Config.Created
			}
			out = append(out, e)
		}
	}
	for _, h := range d.Config.History {
		e := HistoryEntry{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if h.Created != nil {
			e.Created = *h.Created
		}
		if !h.EmptyLayer && len(layers) > 0 {
			e.Layer, layers = layers[0], layers[1:]
		}
		out = append(out, e)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
