package imageservice

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/mount"
)

// The one walk: every digest once, children before parents, siblings in
// their parent's order, heights that let a level go at once.
func TestWalkGraphOrder(t *testing.T) {
	ctx := testContext(t)
	st := openTestStore(t)
	cs := st.ContentStore()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, SharedLayers: 1})
	if err := img.WriteToStore(ctx, cs, st.ImageStore(), "example.com/app:1"); err != nil {
		t.Fatal(err)
	}
	g, err := walkGraph(ctx, cs, img.Target)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[digest.Digest]int{}
	for i, n := range g.order {
		if _, dup := pos[n.desc.Digest]; dup {
			t.Fatalf("%s listed twice", n.desc.Digest)
		}
		pos[n.desc.Digest] = i
		if !n.present {
			t.Fatalf("%s not present", n.desc.Digest)
		}
	}
	if len(pos) != len(img.Blobs) {
		t.Fatalf("%d nodes for %d blobs", len(pos), len(img.Blobs))
	}
	for _, n := range g.order {
		for _, c := range n.children {
			if pos[c.Digest] >= pos[n.desc.Digest] {
				t.Fatalf("child %s after its parent %s", c.Digest, n.desc.Digest)
			}
		}
	}
	amd, arm := img.Platform("linux/amd64").Descriptor.Digest, img.Platform("linux/arm64").Descriptor.Digest
	if pos[amd] > pos[arm] || g.order[len(g.order)-1].desc.Digest != img.Target.Digest {
		t.Fatal("siblings out of index order, or the root not last")
	}
	h := heights(g.order)
	if h[img.Target.Digest] != 2 || h[amd] != 1 || h[img.Platform("linux/amd64").Layers[0].Digest] != 0 {
		t.Fatalf("heights %v", h)
	}
	if below := g.below(amd); len(below) != 1+1+2 || below[len(below)-1].desc.Digest != amd {
		t.Fatalf("below the amd64 manifest: %d nodes", len(below))
	}
}

// A blob missing locally that a repository of the destination registry
// holds makes its manifest available for a push there, and only there.
func TestMountableBlobCountsAsPresent(t *testing.T) {
	ctx := testContext(t)
	st := openTestStore(t)
	cs := st.ContentStore()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}})
	if err := img.WriteToStore(ctx, cs, st.ImageStore(), "example.com/app:1"); err != nil {
		t.Fatal(err)
	}
	gone := img.Platform("linux/arm64").Layers[0].Digest
	if err := cs.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	reg := "reg.example.com:5000"
	arm := img.Platform("linux/arm64").Descriptor
	if _, err := cs.Update(ctx, content.Info{Digest: arm.Digest, Labels: map[string]string{mount.LabelKey(reg): "team/base"}}, "labels."+mount.LabelKey(reg)); err != nil {
		t.Fatal(err)
	}
	g, err := walkGraph(ctx, cs, img.Target)
	if err != nil {
		t.Fatal(err)
	}
	if n := g.nodes[gone]; n.present || !n.mountableFrom(reg) || n.mountableFrom("other.example.com") {
		t.Fatalf("missing layer: present %v, mountable %v", n.present, n.mountableFrom(reg))
	}
	for _, tc := range []struct {
		registry  string
		available bool
	}{{reg, true}, {"other.example.com", false}, {"", false}} {
		ms, err := manifestsOf(ctx, cs, g, tc.registry)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ms, func(m ImageManifest) bool { return m.Descriptor.Digest == arm.Digest })
		if ms[i].Available != tc.available {
			t.Fatalf("registry %q: arm64 available %v, want %v (missing %v)", tc.registry, ms[i].Available, tc.available, ms[i].Missing)
		}
	}
}

// What a push tries for a blob is decided from the labels alone.
func TestStepsFor(t *testing.T) {
	reg, path := "reg.example.com", "team/app"
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("l")}
	for _, tc := range []struct {
		name    string
		sources string // repositories of reg
		other   bool   // labelled for another registry only
		present bool
		newRepo bool
		want    blobSteps
	}{
		{name: "no labels", present: true, want: blobSteps{check: true, local: true}},
		{name: "no labels, new repository", present: true, newRepo: true, want: blobSteps{local: true}},
		{name: "another repository", sources: "team/base", present: true, want: blobSteps{mountFrom: []string{"team/base"}, local: true}},
		{name: "the destination and another", sources: "team/app,team/base", present: true, want: blobSteps{check: true, mountFrom: []string{"team/base"}, local: true}},
		{name: "closest path first, three at most", sources: "a/x,b/y,c/z,team/base,team/sub/q", want: blobSteps{mountFrom: []string{"team/base", "team/sub/q", "a/x"}}},
		{name: "another registry's label", sources: "team/base", other: true, present: true, want: blobSteps{check: true, local: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &node{desc: layer, present: tc.present}
			if tc.sources != "" {
				host := reg
				if tc.other {
					host = "other.example.com"
				}
				n.sources = map[string]string{mount.LabelKey(host): tc.sources}
			}
			got := stepsFor(n, reg, path, tc.newRepo)
			if got.check != tc.want.check || got.local != tc.want.local || !slices.Equal(got.mountFrom, tc.want.mountFrom) {
				t.Fatalf("steps %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Index nesting as docs/BEHAVIOUR.md gives it: an image wrapped in 4
// levels of indexes is walked to its layers; with a 5th level, the index
// at that depth is refused.
func TestWalkGraphNestingDepth(t *testing.T) {
	ctx := testContext(t)
	st := openTestStore(t)
	cs := st.ContentStore()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Index: true})
	if err := img.WriteToStore(ctx, cs, st.ImageStore(), "example.com/app:1"); err != nil {
		t.Fatal(err)
	}
	layer := img.Platform("linux/amd64").Layers[0].Digest
	root := img.Target // an index of one manifest: 1 level
	for levels := 1; levels <= 5; levels++ {
		g, err := walkGraph(ctx, cs, root)
		if levels <= 4 { // docs/BEHAVIOUR.md: "nesting deeper than 4 levels is an error"
			if err != nil {
				t.Fatalf("%d levels of indexes: %v", levels, err)
			}
			if n, ok := g.nodes[layer]; !ok || !n.present {
				t.Fatalf("%d levels of indexes: the layer was not reached", levels)
			}
		} else if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "index "+img.Target.Digest.String()+" nested more than 4 deep") {
			t.Fatalf("%d levels of indexes: %v; want the innermost index refused as nested more than 4 deep", levels, err)
		}
		b, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{root}})
		if err != nil {
			t.Fatal(err)
		}
		root = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b))}
		if err := content.WriteBlob(ctx, cs, root.Digest.String(), bytes.NewReader(b), root); err != nil {
			t.Fatal(err)
		}
	}
}
