package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// The same pushes against three real registries: distribution v3,
// Debian's docker-registry (distribution 2.8) and go-containerregistry's
// pkg/registry (single-POST uploads, no mounts): one platform, the whole
// index, a second repository, a re-push that sends nothing, chunks.
func TestAcrossRegistries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *registrytest.Registry
		log   bool // the registry logs requests (not Debian's)
	}{
		{"distribution v3", func(t testing.TB) *registrytest.Registry { return registrytest.Start(t) }, true},
		{"distribution 2.8 (Debian)", registrytest.StartDebian, false},
		{"go-containerregistry", func(t testing.TB) *registrytest.Registry { return registrytest.StartGGCR(t) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := tc.start(t)
			root := t.TempDir()
			img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 200 << 10, Seed: 95})
			name := reg.Host + "/multi/app:1.0"
			mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))

			arm := img.Platform("linux/arm64").Descriptor.Digest
			mustCtrpush(t, root, "push", "--platform", "linux/arm64", name, reg.Host+"/multi/arm:1.0")
			assertPushed(t, reg, "multi/arm", "1.0", arm)

			mustCtrpush(t, root, "push", name)
			assertPushed(t, reg, "multi/app", "1.0", img.Target.Digest)

			mustCtrpush(t, root, "push", name, reg.Host+"/other/app:1.0")
			assertPushed(t, reg, "other/app", "1.0", img.Target.Digest)

			if tc.log {
				reg.Reset(t)
			}
			mustCtrpush(t, root, "push", name)
			if tc.log {
				for _, r := range reg.Requests(t) {
					if r.Method != http.MethodHead && r.Method != http.MethodGet {
						t.Fatalf("a re-push sent %s %s", r.Method, r.Path)
					}
				}
			}

			chunked := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 200 << 10, Seed: 96})
			cname := reg.Host + "/multi/chunked:1.0"
			mustCtrpush(t, root, "import", writeArchive(t, chunked, "oci-tar", cname, "1.0"))
			mustCtrpush(t, root, "push", "--chunk-size", "64KiB", cname)
			assertPushed(t, reg, "multi/chunked", "1.0", chunked.Target.Digest)
		})
	}
}

// Single-request uploads where the registry takes them: on
// go-containerregistry's registry every small blob goes in the POST that
// would open a session (one round trip, no PUT); distribution answers the
// one probe with a session (202), and the push goes on with POST and PUT.
func TestSingleRequestUploads(t *testing.T) {
	t.Parallel()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, LayerSize: 32 << 10, Seed: 97})
	blobs := 1 + 3
	for _, tc := range []struct {
		name        string
		start       func(testing.TB) *registrytest.Registry
		singles     int // POSTs carrying a blob
		blobPuts    int
		singleTaken bool
	}{
		{"go-containerregistry", func(t testing.TB) *registrytest.Registry { return registrytest.StartGGCR(t) }, blobs, 0, true},
		{"distribution v3", func(t testing.TB) *registrytest.Registry { return registrytest.Start(t) }, 1, blobs, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := tc.start(t)
			root := t.TempDir()
			name := reg.Host + "/single/app:1.0"
			mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
			mustCtrpush(t, root, "push", "--max-concurrent-uploads", "1", name)
			assertPushed(t, reg, "single/app", "1.0", img.Target.Digest)
			singles, puts := 0, 0
			for _, r := range reg.Requests(t) {
				switch {
				case r.Method == http.MethodPost && strings.Contains(r.Query, "digest="):
					singles++
					if tc.singleTaken && r.Status != http.StatusCreated {
						t.Fatalf("single-request upload answered %d", r.Status)
					}
				case r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/"):
					puts++
				}
			}
			if singles != tc.singles || puts != tc.blobPuts {
				t.Fatalf("%d single-request uploads and %d blob PUTs, want %d and %d", singles, puts, tc.singles, tc.blobPuts)
			}
		})
	}
}
