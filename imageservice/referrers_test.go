package imageservice

import (
	"errors"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/go-digest"

	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/store"
)

func TestWithReferrersRejectsBadTypes(t *testing.T) {
	for _, bad := range []string{"", "a b", "x/y,z/w"} {
		var oe *OptionError
		if err := CheckTransferOptions(WithReferrers(bad)); !errors.As(err, &oe) {
			t.Errorf("WithReferrers(%q): %v, want an OptionError", bad, err)
		}
	}
	if err := CheckTransferOptions(WithReferrers(), WithReferrers("application/spdx+json")); err != nil {
		t.Fatal(err)
	}
}

// The walk follows the referrer labels of the image's manifests into
// referrers and theirs; the type filter applies to the image's own
// referrers only; referrers never become platform candidates.
func TestWalkReferrers(t *testing.T) {
	st, err := store.OpenEmbedded(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := namespaces.WithNamespace(t.Context(), "test")
	cs := st.ContentStore()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: 3})
	sig := img.AddReferrer(img.Target, "x/sig", "sig", []byte("s1"))
	sbom := img.AddReferrer(img.Target, "x/sbom", "sbom", []byte("b"))
	sbomSig := img.AddReferrer(sbom, "x/sig", "sbom-sig", []byte("s2"))
	if err := img.WriteToStore(ctx, cs, st.ImageStore(), "example.com/app:1"); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ subject, referrer digest.Digest }{{img.Target.Digest, sig.Digest}, {img.Target.Digest, sbom.Digest}, {sbom.Digest, sbomSig.Digest}} {
		if err := linkReferrer(ctx, cs, l.subject, l.referrer); err != nil {
			t.Fatal(err)
		}
	}
	if n := countReferrers(ctx, cs, []digest.Digest{img.Target.Digest}); n != 3 {
		t.Fatalf("countReferrers = %d, want 3", n)
	}
	for _, tc := range []struct {
		types []string
		want  []digest.Digest
	}{
		{nil, []digest.Digest{sig.Digest, sbom.Digest, sbomSig.Digest}},
		{[]string{"x/sbom"}, []digest.Digest{sbom.Digest, sbomSig.Digest}},
		{[]string{"x/sig"}, []digest.Digest{sig.Digest}},
	} {
		o, err := newTransferOptions([]TransferOption{WithReferrers(tc.types...)})
		if err != nil {
			t.Fatal(err)
		}
		g, err := walkGraph(ctx, cs, img.Target)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.walkReferrers(ctx, cs, &o); err != nil {
			t.Fatal(err)
		}
		got := map[digest.Digest]bool{}
		for _, level := range g.referrerLevels(img.Target.Digest) {
			for _, grp := range level {
				for _, r := range grp.refs {
					got[r.Digest] = true
					if r.ArtifactType == "" || r.MediaType == "" || r.Size == 0 {
						t.Errorf("referrer entry %+v lacks its type or size", r)
					}
				}
			}
		}
		if len(got) != len(tc.want) {
			t.Fatalf("types %v: referrers %v, want %v", tc.types, got, tc.want)
		}
		for _, d := range tc.want {
			if !got[d] {
				t.Fatalf("types %v: %s missing from %v", tc.types, d, got)
			}
		}
		ms, err := manifestsOf(ctx, cs, g, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != len(img.Manifests) {
			t.Fatalf("%d platform manifests with referrers walked, want %d", len(ms), len(img.Manifests))
		}
	}
}
