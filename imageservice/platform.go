package imageservice

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotations buildx puts on attestation manifests in an index.
const (
	annotationReferenceType   = "vnd.docker.reference.type"
	annotationReferenceDigest = "vnd.docker.reference.digest"
	attestationManifestType   = "attestation-manifest"
)

// ImageManifest is one manifest reachable from an image's target.
type ImageManifest struct {
	Descriptor ocispec.Descriptor
	// Platform is the manifest's platform, from its index entry or, when
	// the entry has none, from its config.
	Platform ocispec.Platform
	// Available: the manifest and every blob it references are present.
	Available bool
	// Attestation: a buildx attestation manifest, never a push candidate.
	Attestation bool
	// Missing lists the blobs of this manifest not in the store.
	Missing []ocispec.Descriptor
	// blobs are the config and layers the manifest references.
	blobs []ocispec.Descriptor
}

// walkManifests lists every manifest reachable from target (through nested
// indexes), in index order, as the store has them.
func walkManifests(ctx context.Context, cs content.Store, target ocispec.Descriptor) ([]ImageManifest, error) {
	g, err := walkGraph(ctx, cs, target)
	if err != nil {
		return nil, err
	}
	return manifestsOf(ctx, cs, g, "")
}

// manifestsOf lists the manifests of g in index order. A blob missing from
// the store counts as present when registry is set and a repository of it
// is known to hold the blob (a push there mounts it). Non-distributable
// layers are never needed.
func manifestsOf(ctx context.Context, cs content.Store, g *imageGraph, registries ...string) ([]ImageManifest, error) {
	var out []ImageManifest
	for _, n := range g.order {
		if !images.IsManifestType(n.desc.MediaType) || n.referrer {
			continue
		}
		im := ImageManifest{Descriptor: n.desc, Attestation: n.desc.Annotations[annotationReferenceType] == attestationManifestType}
		if n.desc.Platform != nil {
			im.Platform = platforms.Normalize(*n.desc.Platform)
		}
		if !n.present {
			im.Missing = append(im.Missing, n.desc)
			out = append(out, im)
			continue
		}
		im.blobs = n.children
		for _, blob := range n.children {
			if images.IsNonDistributable(blob.MediaType) {
				continue
			}
			if c := g.nodes[blob.Digest]; c == nil || !c.present && !c.mountableFromAll(registries) {
				bd := blob
				bd.Platform = n.desc.Platform
				im.Missing = append(im.Missing, bd)
			}
		}
		if n.desc.Platform == nil && len(n.children) > 0 {
			if c := g.nodes[n.children[0].Digest]; c != nil && c.present {
				p, err := images.ConfigPlatform(ctx, cs, n.children[0])
				if err != nil && !errdefs.IsNotFound(err) {
					return nil, fmt.Errorf("read config %s of manifest %s: %w", n.children[0].Digest, n.desc.Digest, err)
				}
				if err == nil {
					im.Platform = platforms.Normalize(p)
				}
			}
		}
		im.Available = len(im.Missing) == 0
		out = append(out, im)
	}
	return out, nil
}

// hostPreferred matches every platform and orders those the host can run
// first (best first), keeping index order otherwise.
type hostPreferred struct{ host platforms.MatchComparer }

func (h hostPreferred) Match(ocispec.Platform) bool { return true }

func (h hostPreferred) Less(a, b ocispec.Platform) bool {
	am, bm := h.host.Match(a), h.host.Match(b)
	if am && bm {
		return h.host.Less(a, b)
	}
	return am && !bm
}

// selection is what a push sends for one image.
type selection struct {
	// Descriptor is the root to push.
	Descriptor ocispec.Descriptor
	// Manifests are the platform manifests it contains.
	Manifests []ImageManifest
	// Whole: the image's own target is pushed unchanged.
	Whole bool
	// NewIndex: a new index of the requested platforms is to be made of
	// Entries.
	NewIndex bool
	// Entries are the new index's manifests, in the source's order, each
	// descriptor as the source lists it (platform with variant and
	// os.version, annotations, artifact type), with the attestation
	// manifests of the kept platforms.
	Entries []ocispec.Descriptor
	// Missing are the platforms the image lists whose content is not in
	// the store (so not pushed).
	Missing []ocispec.Platform
	// AttestationsLeft counts attestation manifests of the chosen
	// platforms that are not pushed.
	AttestationsLeft int
}

// platformRequest is what the caller asked for.
type platformRequest struct {
	platforms []ocispec.Platform
	all       bool
	host      ocispec.Platform
}

// selectPush picks what to push for img as the store has it (see
// selectFromGraph).
func selectPush(ctx context.Context, cs content.Store, img images.Image, req platformRequest) (selection, error) {
	g, err := walkGraph(ctx, cs, img.Target)
	if err != nil {
		return selection{}, fmt.Errorf("image %s: %w", img.Name, err)
	}
	return selectFromGraph(ctx, cs, g, img, req, "")
}

// selectFromGraph picks what to push for img, whose graph is g, as
// docs/BEHAVIOUR.md "Picking what to push" says; blobs mountable from
// registry count as present. With several platforms the returned
// selection has NewIndex set and Descriptor empty: the caller builds the
// index.
func selectFromGraph(ctx context.Context, cs content.Store, g *imageGraph, img images.Image, req platformRequest, registries ...string) (selection, error) {
	ms, err := manifestsOf(ctx, cs, g, registries...)
	if err != nil {
		return selection{}, fmt.Errorf("image %s: %w", img.Name, err)
	}
	sel, err := choose(ms, img, req)
	if err != nil || sel.Whole {
		return sel, err
	}
	sel.complete(ms)
	return sel, nil
}

// complete fills in, from every manifest of the image, what a selection of
// some of them leaves out (missing platforms, attestations not pushed)
// and, for a new index, its entries.
func (sel *selection) complete(ms []ImageManifest) {
	chosen := map[digest.Digest]bool{}
	for _, m := range sel.Manifests {
		chosen[m.Descriptor.Digest] = true
	}
	for _, m := range ms {
		switch {
		case m.Attestation && chosen[digest.Digest(m.Descriptor.Annotations[annotationReferenceDigest])]:
			if sel.NewIndex && m.Available {
				chosen[m.Descriptor.Digest] = true
			} else {
				sel.AttestationsLeft++
			}
		case !m.Attestation && !m.Available:
			sel.Missing = append(sel.Missing, m.Platform)
		}
	}
	if sel.NewIndex {
		kept := map[digest.Digest]bool{}
		for _, m := range sel.Manifests {
			kept[m.Descriptor.Digest] = true
		}
		sel.Manifests = nil
		for _, m := range ms {
			if kept[m.Descriptor.Digest] {
				sel.Manifests = append(sel.Manifests, m) // the source's order
			}
			if chosen[m.Descriptor.Digest] {
				d := m.Descriptor
				if d.Platform == nil {
					p := m.Platform
					d.Platform = &p
				}
				sel.Entries = append(sel.Entries, d)
			}
		}
	}
}

// choose applies the platform rules to the manifests of img.
func choose(ms []ImageManifest, img images.Image, req platformRequest) (selection, error) {
	var present, missing []ocispec.Platform
	anyMissing := false
	for _, m := range ms {
		if !m.Available {
			anyMissing = true
		}
		if m.Attestation {
			continue
		}
		if m.Available {
			present = append(present, m.Platform)
		} else {
			missing = append(missing, m.Platform)
		}
	}

	if req.all {
		var lacking []ocispec.Descriptor
		for _, m := range ms {
			lacking = append(lacking, m.Missing...)
		}
		if len(lacking) > 0 {
			return selection{}, &MissingContentError{Image: img.Name, Missing: lacking}
		}
		return selection{Descriptor: img.Target, Manifests: ms, Whole: true}, nil
	}

	notFound := func(wanted []ocispec.Platform) error {
		return &PlatformNotFoundError{Image: img.Name, Wanted: wanted, Present: present, Missing: missing}
	}
	matching := func(pm platforms.MatchComparer) (all []ImageManifest, best *ImageManifest) {
		for i, m := range ms {
			if !m.Available || m.Attestation || !pm.Match(m.Platform) {
				continue
			}
			all = append(all, m)
			if best == nil || pm.Less(m.Platform, best.Platform) {
				best = &ms[i]
			}
		}
		return all, best
	}

	switch len(req.platforms) {
	case 0:
		host := platforms.Only(req.host)
		all, best := matching(hostPreferred{host: host})
		switch {
		case len(all) == 0:
			return selection{}, notFound(nil)
		case !anyMissing:
			return selection{Descriptor: img.Target, Manifests: ms, Whole: true}, nil
		case len(all) == 1:
			return single(*best), nil
		case host.Match(best.Platform):
			return single(*best), nil
		default:
			return selection{}, &PlatformConflictError{Image: img.Name, Matches: platformsOf(all)}
		}
	case 1:
		p := req.platforms[0]
		all, _ := matching(platforms.OnlyStrict(p))
		switch len(all) {
		case 0:
			return selection{}, notFound(req.platforms)
		case 1:
			return single(all[0]), nil
		default:
			return selection{}, &PlatformConflictError{Image: img.Name, Wanted: req.platforms, Matches: platformsOf(all)}
		}
	default:
		var chosen []ImageManifest
		seen := map[digest.Digest]bool{}
		for _, p := range req.platforms {
			all, _ := matching(platforms.OnlyStrict(p))
			switch len(all) {
			case 0:
				return selection{}, notFound([]ocispec.Platform{p})
			case 1:
			default:
				return selection{}, &PlatformConflictError{Image: img.Name, Wanted: []ocispec.Platform{p}, Matches: platformsOf(all)}
			}
			if !seen[all[0].Descriptor.Digest] {
				seen[all[0].Descriptor.Digest] = true
				chosen = append(chosen, all[0])
			}
		}
		if len(chosen) == 1 {
			return single(chosen[0]), nil
		}
		return selection{Manifests: chosen, NewIndex: true}, nil
	}
}

func single(m ImageManifest) selection {
	d := m.Descriptor
	d.Platform = nil
	d.Annotations = nil
	return selection{Descriptor: d, Manifests: []ImageManifest{m}}
}

func platformsOf(ms []ImageManifest) []ocispec.Platform {
	var out []ocispec.Platform
	for _, m := range ms {
		out = append(out, m.Platform)
	}
	return out
}

// bestManifest returns the available, non-attestation manifest the host
// prefers, for the index→manifest fallback.
func bestManifest(ms []ImageManifest, host ocispec.Platform) (ImageManifest, bool) {
	pm := hostPreferred{host: platforms.Only(host)}
	var best *ImageManifest
	for i, m := range ms {
		if !m.Available || m.Attestation {
			continue
		}
		if best == nil || pm.Less(m.Platform, best.Platform) {
			best = &ms[i]
		}
	}
	if best == nil {
		return ImageManifest{}, false
	}
	return *best, true
}
