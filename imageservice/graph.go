package imageservice

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/mount"
)

// maxGraphDepth bounds index nesting: the indexes on the way from the
// root to a manifest (an index of manifests is 1, an index of indexes of
// manifests 2). An index deeper than that is refused rather than walked
// (docs/BEHAVIOUR.md: "nesting deeper than 4 levels is an error").
const maxGraphDepth = 4

// node is one descriptor of an image's graph.
type node struct {
	// desc is the descriptor as first referenced: an index entry keeps its
	// platform and annotations.
	desc ocispec.Descriptor
	// present: the store has the blob; info is then its Info.
	present bool
	info    content.Info
	// children are what a manifest or index references (none for a blob,
	// or for a manifest or index the store lacks).
	children []ocispec.Descriptor
	// sources are the distribution-source labels known for the blob: its
	// parents', its descriptor's annotations and its own labels.
	sources map[string]string
	// referrer: reached only as a referrer (walkReferrers), not from
	// the image's root: never a platform candidate.
	referrer bool
}

// isManifest reports whether n is a manifest or an index (PUT, never
// mounted or uploaded as a blob).
func (n *node) isManifest() bool {
	return images.IsManifestType(n.desc.MediaType) || images.IsIndexType(n.desc.MediaType)
}

// mountableFrom reports whether the store lacks n but its labels name a
// repository of registry that holds it.
func (n *node) mountableFrom(registry string) bool {
	return registry != "" && !n.present && !n.isManifest() && mount.Known(n.sources, registry)
}

// mountableFromAll reports whether n is mountable from a repository of
// every one of registries (none: false).
func (n *node) mountableFromAll(registries []string) bool {
	for _, r := range registries {
		if !n.mountableFrom(r) {
			return false
		}
	}
	return len(registries) > 0
}

// imageGraph is everything reachable from one root: the one walk that
// push, dry run, lease, progress, mounts and label write-back share.
type imageGraph struct {
	root  ocispec.Descriptor
	nodes map[digest.Digest]*node
	// order lists every node once, children before parents, siblings in
	// the order their parent lists them.
	order []*node
	// referrers lists, by subject, the referrers walked with
	// walkReferrers (each also a node of the graph, with its own
	// children); nil when they were not asked for.
	referrers map[digest.Digest][]ocispec.Descriptor
}

// walkGraph walks root in cs. A manifest or index the store lacks is a
// node without children; anything but NotFound from the store is an error.
func walkGraph(ctx context.Context, cs content.Store, root ocispec.Descriptor) (*imageGraph, error) {
	g := &imageGraph{root: root, nodes: map[digest.Digest]*node{}}
	if err := g.visit(ctx, cs, root, nil, 0); err != nil {
		return nil, err
	}
	return g, nil
}

// visit adds desc and everything below it that is not in g yet; depth is
// how many indexes lie above desc.
func (g *imageGraph) visit(ctx context.Context, cs content.Store, desc ocispec.Descriptor, inherited map[string]string, depth int) error {
	if n, ok := g.nodes[desc.Digest]; ok {
		n.sources = mount.MergeSources(n.sources, inherited)
		return nil
	}
	if images.IsIndexType(desc.MediaType) {
		if depth >= maxGraphDepth {
			return fmt.Errorf("index %s nested more than %d deep: %w", desc.Digest, maxGraphDepth, errdefs.ErrInvalidArgument)
		}
		depth++
	}
	n := &node{desc: desc}
	g.nodes[desc.Digest] = n
	var labels map[string]string
	if info, err := cs.Info(ctx, desc.Digest); err == nil {
		n.present, n.info, labels = true, info, info.Labels
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("check %s: %w", desc.Digest, err)
	}
	n.sources = mount.MergeSources(inherited, mount.SourceLabels(desc.Annotations), mount.SourceLabels(labels))
	if !n.present || !n.isManifest() {
		g.order = append(g.order, n)
		return nil
	}
	b, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		return fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	children, err := decodeChildren(desc, b)
	if err != nil {
		return err
	}
	n.children = children
	prefetchInfo(ctx, cs, children)
	for _, c := range children {
		if err := g.visit(ctx, cs, c, n.sources, depth); err != nil {
			return err
		}
	}
	g.order = append(g.order, n)
	return nil
}

// decodeChildren lists what manifest or index desc references.
func decodeChildren(desc ocispec.Descriptor, b []byte) ([]ocispec.Descriptor, error) {
	if images.IsIndexType(desc.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("decode index %s: %w", desc.Digest, err)
		}
		return idx.Manifests, nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", desc.Digest, err)
	}
	return append([]ocispec.Descriptor{m.Config}, m.Layers...), nil
}

// infoPrefetcher is a store that can ask for many Infos at once (the push
// cache over a daemon, where each is a round trip).
type infoPrefetcher interface {
	prefetch(ctx context.Context, descs []ocispec.Descriptor) error
}

func prefetchInfo(ctx context.Context, cs content.Store, descs []ocispec.Descriptor) {
	if p, ok := cs.(infoPrefetcher); ok && len(descs) > 1 {
		_ = p.prefetch(ctx, descs) // errors show again on the Info that needs it
	}
}

// addVirtualIndex adds index desc, whose bytes are b and whose manifests
// are already in the graph, above the root: a new index of some of the
// image's platforms, kept in memory. It inherits the root's sources.
func (g *imageGraph) addVirtualIndex(desc ocispec.Descriptor, b []byte) {
	var idx ocispec.Index
	_ = json.Unmarshal(b, &idx) // made by newIndex
	n := &node{desc: desc, present: true, children: idx.Manifests}
	if r, ok := g.nodes[g.root.Digest]; ok {
		n.sources = r.sources
	}
	g.nodes[desc.Digest] = n
	g.order = append(g.order, n)
}

// below returns the nodes reachable from d, children before parents.
func (g *imageGraph) below(d digest.Digest) []*node {
	reach := map[digest.Digest]bool{}
	var mark func(d digest.Digest)
	mark = func(d digest.Digest) {
		if reach[d] {
			return
		}
		reach[d] = true
		if n, ok := g.nodes[d]; ok {
			for _, c := range n.children {
				mark(c.Digest)
			}
		}
	}
	mark(d)
	var out []*node
	for _, n := range g.order {
		if reach[n.desc.Digest] {
			out = append(out, n)
		}
	}
	return out
}

// heights gives each node of nodes its height: 0 for a blob or a missing
// manifest, one more than its highest child otherwise. Every node of one
// height can be sent at once once the lower heights are done.
func heights(nodes []*node) map[digest.Digest]int {
	h := map[digest.Digest]int{}
	for _, n := range nodes { // children come first
		height := 0
		for _, c := range n.children {
			if ch, ok := h[c.Digest]; ok && ch+1 > height {
				height = ch + 1
			}
		}
		h[n.desc.Digest] = height
	}
	return h
}
