package imageservice

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/store"
)

func testContext(t *testing.T) context.Context {
	return namespaces.WithNamespace(t.Context(), "test")
}

// openTestStore opens a real embedded store in a temporary directory.
func openTestStore(t *testing.T) *store.Embedded {
	t.Helper()
	st, err := store.OpenEmbedded(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestSelectPush(t *testing.T) {
	t.Parallel()
	amd64, arm64, armv7, s390x := "linux/amd64", "linux/arm64", "linux/arm/v7", "linux/s390x"

	type want struct {
		// exactly one of these
		target   bool   // the image's own target
		platform string // that platform's manifest
		newIndex []string
		notFound bool
		conflict bool
		missing  bool // MissingContentError
	}
	cases := []struct {
		name      string
		spec      testimage.Spec
		delete    []string // platforms whose layers are deleted from the store
		deleteAtt bool     // delete the attestation manifests' layers
		host      string
		platforms []string
		all       bool
		want      want
	}{
		// single manifest
		{name: "single/no platform", spec: testimage.Spec{Platforms: []string{arm64}}, host: amd64, want: want{target: true}},
		{name: "single/explicit match", spec: testimage.Spec{Platforms: []string{arm64}}, host: amd64, platforms: []string{arm64}, want: want{platform: arm64}},
		{name: "single/explicit absent", spec: testimage.Spec{Platforms: []string{arm64}}, host: amd64, platforms: []string{amd64}, want: want{notFound: true}},
		{name: "single/content missing", spec: testimage.Spec{Platforms: []string{arm64}}, delete: []string{arm64}, host: amd64, want: want{notFound: true}},
		{name: "single in index/no platform", spec: testimage.Spec{Platforms: []string{arm64}, Index: true}, host: amd64, want: want{target: true}},

		// 2-platform index, all present
		{name: "2/no platform: whole index", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, host: amd64, want: want{target: true}},
		{name: "2/explicit arm64", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, host: amd64, platforms: []string{arm64}, want: want{platform: arm64}},
		{name: "2/explicit absent", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, host: amd64, platforms: []string{s390x}, want: want{notFound: true}},
		{name: "2/several: new index", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, host: amd64, platforms: []string{arm64, amd64}, want: want{newIndex: []string{amd64, arm64}}}, // the source's order
		{name: "2/several, one absent", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, host: amd64, platforms: []string{arm64, s390x}, want: want{notFound: true}},
		{name: "2/all platforms", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, host: amd64, all: true, want: want{target: true}},

		// 2-platform index, one platform's blobs deleted
		{name: "2-missing/no platform: the one present", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, delete: []string{arm64}, host: s390x, want: want{platform: amd64}},
		{name: "2-missing/explicit present", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, delete: []string{arm64}, host: amd64, platforms: []string{amd64}, want: want{platform: amd64}},
		{name: "2-missing/explicit missing", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, delete: []string{arm64}, host: amd64, platforms: []string{arm64}, want: want{notFound: true}},
		{name: "2-missing/all platforms", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, delete: []string{arm64}, host: amd64, all: true, want: want{missing: true}},
		{name: "2-missing-both/no platform", spec: testimage.Spec{Platforms: []string{amd64, arm64}}, delete: []string{amd64, arm64}, host: amd64, want: want{notFound: true}},

		// 3-platform index
		{name: "3/no platform: whole index", spec: testimage.Spec{Platforms: []string{amd64, arm64, armv7}}, host: arm64, want: want{target: true}},
		{name: "3-missing/no platform: host's manifest", spec: testimage.Spec{Platforms: []string{amd64, arm64, armv7}}, delete: []string{armv7}, host: arm64, want: want{platform: arm64}},
		{name: "3-missing/no platform: host's manifest (amd64)", spec: testimage.Spec{Platforms: []string{arm64, amd64, armv7}}, delete: []string{armv7}, host: amd64, want: want{platform: amd64}},
		{name: "3-missing/no platform, host not present: conflict", spec: testimage.Spec{Platforms: []string{amd64, arm64, armv7}}, delete: []string{armv7}, host: s390x, want: want{conflict: true}},
		{name: "3-missing/several present", spec: testimage.Spec{Platforms: []string{amd64, arm64, armv7}}, delete: []string{armv7}, host: s390x, platforms: []string{amd64, arm64}, want: want{newIndex: []string{amd64, arm64}}},

		// an explicit platform matching several manifests
		{name: "duplicate platform/explicit: conflict", spec: testimage.Spec{Platforms: []string{amd64, amd64}}, host: amd64, platforms: []string{amd64}, want: want{conflict: true}},
		{name: "duplicate platform/no platform: whole", spec: testimage.Spec{Platforms: []string{amd64, amd64}}, host: amd64, want: want{target: true}},

		// attestation manifests are never candidates
		{name: "attest/no platform: whole index", spec: testimage.Spec{Platforms: []string{amd64, arm64}, Attestations: true}, host: amd64, want: want{target: true}},
		{name: "attest/explicit amd64", spec: testimage.Spec{Platforms: []string{amd64, arm64}, Attestations: true}, host: amd64, platforms: []string{amd64}, want: want{platform: amd64}},
		{name: "attest/unknown platform", spec: testimage.Spec{Platforms: []string{amd64, arm64}, Attestations: true}, host: amd64, platforms: []string{"unknown/unknown"}, want: want{notFound: true}},
		{name: "attest/single platform: whole index", spec: testimage.Spec{Platforms: []string{arm64}, Attestations: true}, host: amd64, want: want{target: true}},
		{name: "attest missing/no platform: host's manifest", spec: testimage.Spec{Platforms: []string{amd64, arm64}, Attestations: true}, deleteAtt: true, host: amd64, want: want{platform: amd64}},
		{name: "attest missing/all platforms", spec: testimage.Spec{Platforms: []string{amd64, arm64}, Attestations: true}, deleteAtt: true, host: amd64, all: true, want: want{missing: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			st := openTestStore(t)
			cs := st.ContentStore()
			img := testimage.MustNew(tc.spec)
			if err := img.WriteToStore(ctx, cs, st.ImageStore(), "example.com/app:1"); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.delete {
				for _, l := range img.Platform(p).Layers {
					if err := cs.Delete(ctx, l.Digest); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tc.deleteAtt {
				for _, a := range img.Attestation {
					if err := cs.Delete(ctx, a.Digest); err != nil {
						t.Fatal(err)
					}
				}
			}
			var req platformRequest
			req.host = platforms.MustParse(tc.host)
			req.all = tc.all
			for _, p := range tc.platforms {
				req.platforms = append(req.platforms, platforms.Normalize(platforms.MustParse(p)))
			}
			rec, err := st.ImageStore().Get(ctx, "example.com/app:1")
			if err != nil {
				t.Fatal(err)
			}
			sel, err := selectPush(ctx, cs, rec, req)

			var nf *PlatformNotFoundError
			var conflict *PlatformConflictError
			var missing *MissingContentError
			switch {
			case tc.want.notFound:
				if !errors.As(err, &nf) || !errdefs.IsNotFound(err) {
					t.Fatalf("want PlatformNotFoundError, got %v (selection %+v)", err, sel.Descriptor)
				}
				return
			case tc.want.conflict:
				if !errors.As(err, &conflict) || !errdefs.IsConflict(err) {
					t.Fatalf("want PlatformConflictError, got %v (selection %+v)", err, sel.Descriptor)
				}
				return
			case tc.want.missing:
				if !errors.As(err, &missing) || !errdefs.IsNotFound(err) || len(missing.Missing) == 0 {
					t.Fatalf("want MissingContentError, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want.target:
				if sel.Descriptor.Digest != img.Target.Digest || !sel.Whole {
					t.Fatalf("want the image target %s, got %s", img.Target.Digest, sel.Descriptor.Digest)
				}
			case tc.want.platform != "":
				wantD := img.Platform(tc.want.platform).Descriptor.Digest
				if sel.Descriptor.Digest != wantD {
					t.Fatalf("want the %s manifest %s, got %s", tc.want.platform, wantD, sel.Descriptor.Digest)
				}
				if !images.IsManifestType(sel.Descriptor.MediaType) {
					t.Fatalf("want a manifest media type, got %s", sel.Descriptor.MediaType)
				}
			case tc.want.newIndex != nil:
				if !sel.NewIndex {
					t.Fatalf("want a new index, got %+v", sel)
				}
				var got []digest.Digest
				for _, m := range sel.Manifests {
					got = append(got, m.Descriptor.Digest)
				}
				var wantDs []digest.Digest
				for _, p := range tc.want.newIndex {
					wantDs = append(wantDs, img.Platform(p).Descriptor.Digest)
				}
				if len(got) != len(wantDs) {
					t.Fatalf("new index of %v, want %v", got, wantDs)
				}
				for i := range got {
					if got[i] != wantDs[i] {
						t.Fatalf("new index of %v, want %v", got, wantDs)
					}
				}
			}
		})
	}
}

func TestPlatformNotFoundNamesWantedAndPresent(t *testing.T) {
	t.Parallel()
	err := &PlatformNotFoundError{
		Image:   "example.com/app:1",
		Wanted:  []ocispec.Platform{{OS: "linux", Architecture: "s390x"}},
		Present: []ocispec.Platform{{OS: "linux", Architecture: "amd64"}},
		Missing: []ocispec.Platform{{OS: "linux", Architecture: "arm64", Variant: "v8"}},
	}
	want := "image example.com/app:1 has no content for linux/s390x in the store; present: linux/amd64; listed but missing: linux/arm64/v8"
	if err.Error() != want {
		t.Fatalf("got  %q\nwant %q", err.Error(), want)
	}
}
