package integration

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// Chunked uploads against the real registry: asked for with --chunk-size,
// forced by a proxy with a body limit (as nginx's 1 MiB or Cloudflare's
// 100 MB, scaled down), and resumed after a connection dropped mid-chunk.
func TestChunkedUploads(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 1 << 20, Seed: 90})
	var total int64
	for _, l := range img.Platform("linux/amd64").Layers {
		total += l.Size
	}
	name := proxy.Host + "/chunk/app:1.0"
	archive := writeArchive(t, img, "oci-tar", name, "1.0")
	// A fresh store for each case: no labels, so no mounts from the last.
	fresh := func() string {
		root := t.TempDir()
		mustCtrpush(t, root, "import", archive)
		return root
	}
	patches := func() (n int) {
		for _, r := range reg.Requests(t) {
			if r.Method == http.MethodPatch {
				n++
			}
		}
		return n
	}

	// Asked for: 256 KiB chunks.
	reg.Reset(t)
	asked := fresh()
	dry := mustCtrpush(t, asked, "push", "--dry-run", "--chunk-size", "256KiB", name, proxy.Host+"/chunk/asked:1.0")
	if !strings.Contains(dry.stdout, "upload (5 chunks of 256KiB)") {
		t.Fatalf("the dry run does not say how the blobs would go:\n%s", dry.stdout)
	}
	out := mustCtrpush(t, asked, "push", "--chunk-size", "256KiB", name, proxy.Host+"/chunk/asked:1.0")
	if !strings.Contains(out.stderr, "chunks of 256KiB)") {
		t.Fatalf("progress does not say the blobs go in chunks:\n%s", out.stderr)
	}
	assertPushed(t, reg, "chunk/asked", "1.0", img.Target.Digest)
	if n := patches(); n < 8 {
		t.Fatalf("%d PATCH requests for two 1 MiB layers in 256 KiB chunks", n)
	}

	// A proxy refusing bodies over 300 KiB (413): the push finds a chunk
	// size it takes.
	var mu sync.Mutex
	refused := 0
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if (r.Method == http.MethodPut || r.Method == http.MethodPatch) && r.ContentLength > 300<<10 {
			mu.Lock()
			refused++
			mu.Unlock()
			return faultproxy.Fault{Status: http.StatusRequestEntityTooLarge, Code: "SIZE_INVALID", Early: true}
		}
		return faultproxy.Fault{}
	})
	reg.Reset(t)
	mustCtrpush(t, fresh(), "push", name, proxy.Host+"/chunk/limited:1.0")
	assertPushed(t, reg, "chunk/limited", "1.0", img.Target.Digest)
	if refused == 0 || patches() == 0 {
		t.Fatalf("%d bodies refused, %d PATCHes: the limit was never hit", refused, patches())
	}

	// A connection dropped once in the middle of a chunk: resumed from what
	// the registry holds, so the bytes sent are the blobs plus less than a
	// chunk.
	var once sync.Once
	dropped := false
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPatch && strings.Contains(r.Header.Get("Content-Range"), "524288-") {
			f := faultproxy.Fault{}
			once.Do(func() { f = faultproxy.Fault{ResetAfter: 100 << 10}; dropped = true })
			return f
		}
		return faultproxy.Fault{}
	})
	root := fresh()
	before := proxy.BodyBytes()
	out = mustCtrpush(t, root, "push", "--chunk-size", "256KiB", name, proxy.Host+"/chunk/dropped:1.0")
	if !strings.Contains(out.stderr, "(resumed at ") {
		t.Fatalf("progress does not say where the upload resumed:\n%s", out.stderr)
	}
	assertPushed(t, reg, "chunk/dropped", "1.0", img.Target.Digest)
	sent := proxy.BodyBytes() - before
	t.Logf("%d body bytes sent for %d bytes of layers, one chunk dropped after 100 KiB", sent, total)
	if !dropped || sent > total+(256<<10)+(64<<10) {
		t.Fatalf("dropped %v; %d bytes sent for %d of layers: more than a chunk sent again", dropped, sent, total)
	}
}

// Registries' own rules, emulated by a proxy in front of the real
// registry: GHCR answers 416 to a PATCH over 4 MiB (smaller chunks, from
// where the registry stands); a registry that takes whole uploads only
// (405 to PATCH, as Google Artifact Registry wants) gets one PUT even when
// chunks were asked for.
func TestRegistryUploadQuirks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		rule  func(*http.Request) faultproxy.Fault
		chunk string
		want  func(t *testing.T, reqs []registrytest.Request)
	}{
		{"GHCR: 416 for a PATCH over 4 MiB", func(r *http.Request) faultproxy.Fault {
			if r.Method == http.MethodPatch && r.ContentLength > 4<<20 {
				return faultproxy.Fault{Status: http.StatusRequestedRangeNotSatisfiable, Code: "BLOB_UPLOAD_INVALID"}
			}
			return faultproxy.Fault{}
		}, "8MiB", func(t *testing.T, reqs []registrytest.Request) {
			for _, r := range reqs {
				if r.Method == http.MethodPatch && r.BodyBytes > 4<<20 {
					t.Fatalf("a PATCH of %d bytes reached the registry", r.BodyBytes)
				}
			}
		}},
		{"whole uploads only: 405 for PATCH", func(r *http.Request) faultproxy.Fault {
			if r.Method == http.MethodPatch {
				return faultproxy.Fault{Status: http.StatusMethodNotAllowed, Code: "UNSUPPORTED", Early: true}
			}
			return faultproxy.Fault{}
		}, "1MiB", func(t *testing.T, reqs []registrytest.Request) {
			puts := 0
			for _, r := range reqs {
				if r.Method == http.MethodPatch {
					t.Fatal("a PATCH reached the registry")
				}
				if r.Method == http.MethodPut && r.BodyBytes > 5<<20 {
					puts++
				}
			}
			if puts != 2 {
				t.Fatalf("%d whole-layer PUTs, want 2", puts)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.Start(t)
			proxy := faultproxy.Start(t, reg.Host)
			root := t.TempDir()
			img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 6 << 20, Seed: 91})
			name := proxy.Host + "/quirk/app:1.0"
			mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
			proxy.SetRule(tc.rule)
			mustCtrpush(t, root, "push", "--chunk-size", tc.chunk, name)
			assertPushed(t, reg, "quirk/app", "1.0", img.Target.Digest)
			if proxy.Injected() == 0 {
				t.Fatal("the quirk never showed: the test tested nothing")
			}
			tc.want(t, reg.Requests(t))
		})
	}
}
