package integration

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/registrytest"
)

// Through the binary: import and push to bars/a; pull one platform of it
// into an empty store; --dry-run then push the whole index to bars/d: the
// dry run predicts mounts and no upload, and the push mounts every blob.
func TestPullOnePlatformDryRunAndPushMounts(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	src := t.TempDir()
	name := reg.Host + "/bars/a:1.0"
	img := importSample(t, src, name, "1.0", 5)
	mustCtrpush(t, src, "push", name)

	// Pushing to a second repository from the importing store mounts.
	reg.Reset(t)
	second := mustCtrpush(t, src, "push", name, reg.Host+"/bars/b:1.0")
	if n := strings.Count(second.stderr, ": Mounted from bars/a"); n != len(img.Digests())-3 { // blobs, not the 3 manifests
		t.Fatalf("%d blobs mounted from bars/a, want %d:\n%s", n, len(img.Digests())-3, second.stderr)
	}
	for _, r := range reg.Requests(t) {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/") {
			t.Fatalf("second push uploaded a blob: %+v", r)
		}
	}

	dst := t.TempDir()
	pull := mustCtrpush(t, dst, "pull", "--platform", "linux/arm64", name)
	if !strings.HasPrefix(pull.stdout, name+": digest: "+img.Target.Digest.String()) {
		t.Fatalf("pull stdout %q", pull.stdout)
	}
	images := mustCtrpush(t, dst, "images", "--long").stdout
	if !regexp.MustCompile(`\slinux/arm64\s+linux/amd64\s`).MatchString(images) {
		t.Fatalf("images after pulling arm64 should list amd64 as missing:\n%s", images)
	}

	reg.Reset(t)
	dry := mustCtrpush(t, dst, "push", "--dry-run", name, reg.Host+"/bars/d:1.0")
	if !strings.Contains(dry.stdout, "0 to upload (0B)") || !strings.Contains(dry.stdout, "mount from bars/") {
		t.Fatalf("dry run:\n%s", dry.stdout)
	}
	for _, r := range reg.Requests(t) {
		if r.Method != http.MethodHead && r.Method != http.MethodGet {
			t.Fatalf("dry run sent %s %s (only HEAD and GET change nothing)", r.Method, r.Path)
		}
	}
	if tags := reg.Tags(t, "bars/d"); tags != nil {
		t.Fatalf("dry run created tags %v", tags)
	}

	reg.Reset(t)
	push := mustCtrpush(t, dst, "push", name, reg.Host+"/bars/d:1.0")
	if !strings.HasPrefix(push.stdout, "1.0: digest: "+img.Target.Digest.String()) {
		t.Fatalf("push of the whole index: %q", push.stdout)
	}
	assertPushed(t, reg, "bars/d", "1.0", img.Target.Digest)
	mounts := 0
	for _, r := range reg.Requests(t) {
		q, _ := url.ParseQuery(r.Query)
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/") {
			t.Fatalf("push after a one-platform pull uploaded %+v", r)
		}
		if q.Get("mount") != "" && r.Status == http.StatusCreated {
			mounts++
		}
	}
	if mounts != len(img.Digests())-3 {
		t.Fatalf("%d mounts, want %d", mounts, len(img.Digests())-3)
	}
}
