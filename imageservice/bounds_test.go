package imageservice

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
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

// A pull from a registry that is down fails at once, saying so as a push
// does, instead of retrying the resolve through the backoffs: a policy
// whose first wait is an hour shows any retry as the test's deadline.
func TestPullFromADeadRegistryFailsAtOnce(t *testing.T) {
	t.Parallel()
	host := registrytest.RefusingHost(t)
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}}, "dead/app:1.0")
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	slow := WithRetryPolicy(RetryPolicy{MaxRetries: 5, Backoff: time.Hour, MaxBackoff: time.Hour, Statuses: DefaultRetryPolicy.Statuses})
	_, err := f.svc.Pull(ctx, host+"/dead/app:1.0", slow)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "registry "+host+" is unreachable; check that it is running and the address is right") {
		t.Fatalf("pull from a dead registry: %v (deadline: %v)", err, ctx.Err())
	}
}
