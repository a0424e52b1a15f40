package imageservice

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// TestPlanPushPredictsThePush: what --dry-run says equals what the push
// then does, blob by blob: uploads, mounts (and from where), blobs already
// there, manifests put.
func TestPlanPushPredictsThePush(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, SharedLayers: 1}, "bars/a:1.0")
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	// bars/b gets the amd64 manifest; one arm64 layer vanishes from bars/a.
	if _, err := f.svc.Push(f.ctx, f.name, WithDestination(f.reg.Host+"/bars/b:amd64"), WithPlatforms("linux/amd64")); err != nil {
		t.Fatal(err)
	}
	gone := f.img.Platform("linux/arm64").Layers[1].Digest
	f.reg.DeleteBlob(t, "bars/a", gone)

	f.reg.Reset(t)
	plans, err := f.svc.PlanPush(f.ctx, f.name, WithDestination(f.reg.Host+"/bars/b"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.reg.Requests(t) {
		if r.Method != http.MethodHead && r.Method != http.MethodGet {
			t.Fatalf("dry run sent %s %s (only HEAD and GET change nothing)", r.Method, r.Path)
		}
	}
	predicted := map[digest.Digest]string{}
	for _, b := range plans[0].Blobs {
		predicted[b.Descriptor.Digest] = string(b.Action) + ":" + b.From
	}
	if predicted[gone] != "upload:" {
		t.Fatalf("the vanished layer is predicted %q, want upload", predicted[gone])
	}
	if plans[0].UploadBytes != f.img.Platform("linux/arm64").Layers[1].Size {
		t.Fatalf("upload bytes %d", plans[0].UploadBytes)
	}

	f.reg.Reset(t)
	if _, err := f.svc.Push(f.ctx, f.name, WithDestination(f.reg.Host+"/bars/b")); err != nil {
		t.Fatal(err)
	}
	actual := map[digest.Digest]string{}
	for d := range predicted {
		actual[d] = "exists:"
	}
	for _, r := range f.reg.Requests(t) {
		q, _ := url.ParseQuery(r.Query)
		switch {
		case r.Method == http.MethodPost && q.Get("mount") != "" && r.Status == http.StatusCreated:
			actual[digest.Digest(q.Get("mount"))] = "mount:" + q.Get("from")
		case r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/"):
			actual[digest.Digest(q.Get("digest"))] = "upload:"
		case r.Method == http.MethodPut && strings.Contains(r.Path, "/manifests/"):
			ref := r.Path[strings.LastIndex(r.Path, "/")+1:]
			if ref == "1.0" {
				ref = f.img.Target.Digest.String()
			}
			actual[digest.Digest(ref)] = "put:"
		}
	}
	if len(actual) != len(predicted) {
		t.Fatalf("push touched %d digests, plan listed %d", len(actual), len(predicted))
	}
	kinds := map[string]int{}
	for d, want := range predicted {
		if actual[d] != want {
			t.Errorf("%s: predicted %q, push did %q", d, want, actual[d])
		}
		kinds[strings.Split(want, ":")[0]]++
	}
	// The scenario covers every action.
	for _, k := range []string{"upload", "mount", "exists", "put"} {
		if kinds[k] == 0 {
			t.Errorf("scenario has no %q blob: %v", k, kinds)
		}
	}
}

// When the dry run cannot ask a mount source whether it has a blob (the
// registry refuses the HEAD there), it says the push will try that mount
// and may upload, and counts the bytes as uploaded; the push then mounts.
func TestPlanSaysMayUploadWhenTheSourceCannotBeAsked(t *testing.T) {
	t.Parallel()
	f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, Seed: 60})
	if _, err := f.svc.Push(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, "/v2/rel/app/blobs/") {
			return faultproxy.Fault{Status: http.StatusForbidden}
		}
		return faultproxy.Fault{}
	})
	plans, err := f.svc.PlanPush(f.ctx, name, WithDestination(proxy.Host+"/rel/copy:1.0"))
	if err != nil {
		t.Fatal(err)
	}
	var blobs int64
	for _, b := range plans[0].Blobs {
		if images.IsManifestType(b.Descriptor.MediaType) {
			continue
		}
		blobs += b.Descriptor.Size
		if b.Action != ActionUpload || b.From != "rel/app" {
			t.Fatalf("blob %s planned %s from %q, want upload with a mount from rel/app to try", b.Descriptor.Digest, b.Action, b.From)
		}
	}
	if plans[0].UploadBytes != blobs || proxy.Injected() == 0 {
		t.Fatalf("upload bytes %d of %d; %d refusals injected", plans[0].UploadBytes, blobs, proxy.Injected())
	}
	f.reg.Reset(t)
	if _, err := f.svc.Push(f.ctx, name, WithDestination(proxy.Host+"/rel/copy:1.0")); err != nil {
		t.Fatal(err)
	}
	if up := requestsFor(t, f.reg, "rel/copy"); len(up.uploads) != 0 {
		t.Fatalf("%d uploads: the mounts the plan said it would try did not happen", len(up.uploads))
	}
}
