package imageservice

import (
	"errors"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/testimage"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The real distribution registry refuses, with a 500 and three errors, a
// manifest whose foreign layers name URLs its validation.manifests.urls
// does not allow (by default: none). That refusal is permanent: the
// manifest is PUT once, not retried, and the error is typed, names the
// layer and its URL, and shows every error the registry sent.
func TestForeignLayerRefusalIsNotRetried(t *testing.T) {
	t.Parallel()
	spec := testimage.Spec{
		Platforms:       []string{"windows/amd64"},
		PlatformDetails: []ocispec.Platform{{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5458"}},
		Layers:          2, ForeignLayers: 1, Docker: true, Seed: 71,
	}
	for _, upload := range []bool{false, true} {
		f := newPushFixture(t, spec, "win/app:1.0")
		opts := []TransferOption{fastRetries}
		if upload {
			opts = append(opts, WithNondistributableLayers())
		}
		_, err := f.svc.Push(f.ctx, f.name, opts...)
		var fe *ForeignLayersError
		if !errors.As(err, &fe) || len(fe.Layers) != 1 || fe.Layers[0].Digest != f.img.Foreign[0].Digest {
			t.Fatalf("upload %v: %v, want a ForeignLayersError naming %s", upload, err, f.img.Foreign[0].Digest)
		}
		for _, want := range []string{f.img.Foreign[0].URLs[0], "MANIFEST_BLOB_UNKNOWN", "invalid URL on layer", "500"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("upload %v: error does not say %q: %v", upload, want, err)
			}
		}
		if n := manifestPuts(t, f.reg); n != 1 {
			t.Fatalf("upload %v: the refused manifest was PUT %d times, want once", upload, n)
		}
	}
}
