package imageservice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/mount"
)

// countingStore is a content store that counts the bytes read from each
// blob through ReaderAt (how every upload reads its blob).
type countingStore struct {
	content.Store
	mu   sync.Mutex
	read map[digest.Digest]int64
}

func newCountingStore(cs content.Store) *countingStore {
	return &countingStore{Store: cs, read: map[digest.Digest]int64{}}
}

func (c *countingStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := c.Store.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &countingReaderAt{ReaderAt: ra, c: c, d: desc.Digest}, nil
}

func (c *countingStore) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = map[digest.Digest]int64{}
}

func (c *countingStore) bytesRead(d digest.Digest) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read[d]
}

type countingReaderAt struct {
	content.ReaderAt
	c *countingStore
	d digest.Digest
}

func (r *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.ReaderAt.ReadAt(p, off)
	r.c.mu.Lock()
	r.c.read[r.d] += int64(n)
	r.c.mu.Unlock()
	return n, err
}

// multiFixture is a push fixture whose service reads the store through a
// countingStore.
func multiFixture(t *testing.T, spec testimage.Spec) (*pushFixture, *countingStore) {
	t.Helper()
	f := newPushFixture(t, spec, "src/app:1.0")
	cs := newCountingStore(f.store.ContentStore())
	svc, err := New(cs, f.store.ImageStore(), f.store.LeaseManager(), WithNamespace("test"), WithHostPlatform(f.svc.host), WithBatch(f.store.Batch))
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f, cs
}

// assertImageOn checks that reg's repo:tag is d and holds every blob and
// manifest below it with the image's bytes.
func assertImageOn(t *testing.T, f *pushFixture, reg *registrytest.Registry, repo, tag string, d digest.Digest) {
	t.Helper()
	saved := f.reg
	f.reg = reg
	defer func() { f.reg = saved }()
	f.assertManifest(t, repo, tag, d)
}

// uploadBlob puts b into reg's repo directly (POST, then PUT), as another
// client did before.
func uploadBlob(t *testing.T, host, repo string, b []byte) {
	t.Helper()
	resp, err := http.Post("http://"+host+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("open an upload in %s/%s: %s %v", host, repo, resp.Status, err)
	}
	u := (&url.URL{Scheme: "http", Host: host}).ResolveReference(loc)
	q := u.Query()
	q.Set("digest", digest.FromBytes(b).String())
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, u.String(), bytes.NewReader(b))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload into %s/%s: %s", host, repo, resp.Status)
	}
}

// One push to distribution v3, Debian's distribution 2.8 and ggcr: every
// registry serves the image under its tag; a layer another repository of
// v3 holds (by its label) is mounted there and uploaded to the other two;
// and the store reads each layer and the config once for all of them,
// also the 10 MiB layer that does not fit the shared window.
func TestPushToThreeRegistriesReadsEachBlobOnce(t *testing.T) {
	t.Parallel()
	f, cs := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, LayerSize: 10 << 20})
	v3, deb, ggcr := f.reg, registrytest.StartDebian(t), registrytest.StartGGCR(t)
	m := f.img.Manifests[0]
	shared := m.Layers[0]
	uploadBlob(t, v3.Host, "base/app", f.img.Blobs[shared.Digest])
	if _, err := f.store.ContentStore().Update(f.ctx, content.Info{Digest: shared.Digest, Labels: map[string]string{mount.LabelKey(v3.Host): "base/app"}},
		"labels."+mount.LabelKey(v3.Host)); err != nil {
		t.Fatal(err)
	}
	v3.Reset(t)
	dests := []string{v3.Host + "/multi/app:1.0", deb.Host + "/multi/app:1.0", ggcr.Host + "/multi/app:1.0"}
	var opts []TransferOption
	for _, d := range dests {
		opts = append(opts, WithDestination(d))
	}

	plans, err := f.svc.PlanPush(f.ctx, f.name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 3 {
		t.Fatalf("dry run: %d plans, want one per destination", len(plans))
	}
	for i, p := range plans {
		if p.Reference != dests[i] {
			t.Fatalf("plan %d is for %s, want %s", i, p.Reference, dests[i])
		}
		want := ActionUpload
		if i == 0 {
			want = ActionMount
		}
		for _, b := range p.Blobs {
			if b.Descriptor.Digest == shared.Digest && b.Action != want {
				t.Fatalf("dry run for %s: %s %s, want %s", p.Reference, b.Descriptor.Digest, b.Action, want)
			}
		}
	}
	for _, b := range m.Layers {
		if n := cs.bytesRead(b.Digest); n != 0 {
			t.Fatalf("the dry run read %d bytes of layer %s", n, b.Digest)
		}
	}
	cs.reset()

	rec := &recorder{}
	results, err := f.svc.Push(f.ctx, f.name, append(opts, WithProgress(rec))...)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	for i, r := range results {
		if r.Reference != dests[i] || !r.Tagged || r.Err != nil || r.Descriptor.Digest != f.img.Target.Digest {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	for _, reg := range []*registrytest.Registry{v3, deb, ggcr} {
		assertImageOn(t, f, reg, "multi/app", "1.0", f.img.Target.Digest)
	}
	// Mounted into v3, uploaded to ggcr (Debian's registry keeps no log).
	mounted, uploadedV3 := false, false
	for _, r := range v3.Requests(t) {
		if r.Method == http.MethodPost && strings.Contains(r.Query, "mount="+url.QueryEscape(shared.Digest.String())) && r.Status == http.StatusCreated {
			mounted = true
		}
		if strings.Contains(r.Query, "digest="+url.QueryEscape(shared.Digest.String())) && r.BodyBytes > 0 {
			uploadedV3 = true
		}
	}
	if !mounted || uploadedV3 {
		t.Fatalf("v3: mounted %v, uploaded %v; want a mount and no upload of %s", mounted, uploadedV3, shared.Digest)
	}
	var sentGGCR int64
	for _, r := range ggcr.Requests(t) {
		sentGGCR += r.BodyBytes
	}
	if sentGGCR < 3*(10<<20) {
		t.Fatalf("ggcr received %d bytes, want every layer's", sentGGCR)
	}
	// Read once: every layer and the config, whatever the destinations.
	for _, b := range append(m.Layers, m.Config) {
		if n := cs.bytesRead(b.Digest); n != b.Size {
			t.Fatalf("%s (%d bytes) was read %d bytes from the store, want once", b.Digest, b.Size, n)
		}
	}
	// Progress: every transfer event names its destination.
	seen := map[string]bool{}
	for _, e := range rec.events {
		if e.Transfer != nil {
			if e.Destination == "" {
				t.Fatalf("transfer event without its destination: %+v", e.Transfer)
			}
			seen[e.Destination] = true
		}
	}
	if len(seen) != 3 {
		t.Fatalf("events named %v, want the three destinations", seen)
	}
	f.assertNoLeases(t)
}

// A destination behind a proxy that refuses one layer (403, for good):
// the push fails with exit-1 error saying where each destination stands;
// no destination is tagged; the other two hold every blob and child
// manifest (the retry will be quick). With WithBestEffort the other two are
// tagged and the refusing one is not.
func TestMultiPushRefusedBlobTagsNothing(t *testing.T) {
	t.Parallel()
	spec := testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 64 << 10}
	for _, bestEffort := range []bool{false, true} {
		t.Run(fmt.Sprintf("bestEffort=%v", bestEffort), func(t *testing.T) {
			t.Parallel()
			f, _ := multiFixture(t, spec)
			other := registrytest.StartGGCR(t)
			refusing := registrytest.Start(t)
			proxy := faultproxy.Start(t, refusing.Host)
			bad := f.img.Manifests[1].Layers[1].Digest
			proxy.SetRule(func(r *http.Request) faultproxy.Fault {
				if r.URL.Query().Get("digest") == bad.String() {
					return faultproxy.Fault{Status: http.StatusForbidden, Code: "DENIED"}
				}
				return faultproxy.Fault{}
			})
			dests := []string{f.reg.Host + "/multi/app:1.0", proxy.Host + "/multi/app:1.0", other.Host + "/multi/app:1.0"}
			opts := []TransferOption{fastRetries}
			for _, d := range dests {
				opts = append(opts, WithDestination(d))
			}
			if bestEffort {
				opts = append(opts, WithBestEffort())
			}
			results, err := f.svc.Push(f.ctx, f.name, opts...)
			var de *DestinationsError
			if !errors.As(err, &de) {
				t.Fatalf("push: %v, want a DestinationsError", err)
			}
			if proxy.Injected() == 0 {
				t.Fatal("the proxy refused nothing")
			}
			if len(results) != 3 || len(de.Results) != 3 {
				t.Fatalf("%d results, want 3", len(results))
			}
			var re *RegistryError
			if results[1].Tagged || !errors.As(results[1].Err, &re) || re.Status != http.StatusForbidden {
				t.Fatalf("the refusing destination: tagged %v, err %v", results[1].Tagged, results[1].Err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != 4 || !strings.Contains(lines[2], dests[1]) || !strings.Contains(lines[2], "403") {
				t.Fatalf("error message, want one line per destination:\n%v", err)
			}
			if _, _, _, ok := refusing.Manifest(t, "multi/app", "1.0"); ok {
				t.Fatal("the refusing registry is tagged")
			}
			for _, i := range []int{0, 2} {
				reg := []*registrytest.Registry{f.reg, nil, other}[i]
				_, _, _, tagged := reg.Manifest(t, "multi/app", "1.0")
				if tagged != bestEffort || results[i].Tagged != bestEffort {
					t.Fatalf("%s: tag there %v, result says %v; want %v", dests[i], tagged, results[i].Tagged, bestEffort)
				}
				if !bestEffort {
					if !errors.Is(results[i].Err, errHeld) || !strings.Contains(lines[1+i], "not tagged") {
						t.Fatalf("%s: %v, want held back", dests[i], results[i].Err)
					}
				}
				// Every child manifest and blob is there.
				for _, pm := range f.img.Manifests {
					assertImageOn(t, f, reg, "multi/app", pm.Descriptor.Digest.String(), pm.Descriptor.Digest)
				}
			}
		})
	}
}

// A destination whose connection drops in the middle of a chunk resumes
// from where its registry stands, and the layer is still read from the
// store once for both destinations.
func TestMultiPushResumesADroppedDestination(t *testing.T) {
	t.Parallel()
	f, cs := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 1, LayerSize: 6 << 20})
	other := registrytest.StartGGCR(t)
	proxy := faultproxy.Start(t, f.reg.Host)
	var mu sync.Mutex
	patches := 0
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method != http.MethodPatch {
			return faultproxy.Fault{}
		}
		mu.Lock()
		defer mu.Unlock()
		patches++
		if patches == 3 {
			return faultproxy.Fault{ResetAfter: 100 << 10}
		}
		return faultproxy.Fault{}
	})
	dests := []string{proxy.Host + "/multi/app:1.0", other.Host + "/multi/app:1.0"}
	rec := &recorder{}
	if _, err := f.svc.Push(f.ctx, f.name, fastRetries, WithChunkSize(proxy.Host, 1<<20), WithProgress(rec),
		WithDestination(dests[0]), WithDestination(dests[1])); err != nil {
		t.Fatal(err)
	}
	if proxy.Injected() != 1 {
		t.Fatalf("%d faults injected, want the one drop", proxy.Injected())
	}
	for _, reg := range []*registrytest.Registry{f.reg, other} {
		assertImageOn(t, f, reg, "multi/app", "1.0", f.img.Target.Digest)
	}
	resumed := false
	for _, e := range rec.events {
		if e.Transfer != nil && e.Destination == dests[0] && strings.HasPrefix(e.Transfer.Via, "resumed at") {
			resumed = true
		}
	}
	if !resumed {
		t.Fatal("progress never said the upload resumed")
	}
	layer := f.img.Manifests[0].Layers[0]
	// The 6 MiB layer fits the shared window: the resumed upload reads
	// what it sends again from there, not from the store.
	if n := cs.bytesRead(layer.Digest); n != layer.Size {
		t.Fatalf("the layer (%d bytes) was read %d bytes from the store, want once", layer.Size, n)
	}
}

// blobTracker is a reverse proxy in front of one registry that counts,
// with the trackers it shares state with, the distinct blobs whose PUT is
// in flight at once across all of them.
type blobTracker struct {
	mu       sync.Mutex
	inFlight map[string]int
	most     int
}

func (b *blobTracker) front(t *testing.T, target string) string {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := r.URL.Query().Get("digest")
		if r.Method != http.MethodPut || d == "" || !strings.Contains(r.URL.Path, "/blobs/uploads/") {
			rp.ServeHTTP(w, r)
			return
		}
		b.mu.Lock()
		b.inFlight[d]++
		b.most = max(b.most, len(b.inFlight))
		b.mu.Unlock()
		time.Sleep(30 * time.Millisecond) // keep it in flight a while
		rp.ServeHTTP(w, r)
		b.mu.Lock()
		if b.inFlight[d]--; b.inFlight[d] == 0 {
			delete(b.inFlight, d)
		}
		b.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// --max-concurrent-uploads bounds the blobs in flight across every
// destination together: with 2, two blobs at most are being uploaded at
// any time, each to both registries (and the bound is used).
func TestMultiPushUploadBoundHoldsAcrossDestinations(t *testing.T) {
	t.Parallel()
	f, _ := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 6, LayerSize: 64 << 10})
	other := registrytest.Start(t)
	tr := &blobTracker{inFlight: map[string]int{}}
	a, b := tr.front(t, f.reg.Host), tr.front(t, other.Host)
	if _, err := f.svc.Push(f.ctx, f.name, WithMaxConcurrentUploads(2), WithDestination(a+"/multi/app:1"), WithDestination(b+"/multi/app:1")); err != nil {
		t.Fatal(err)
	}
	if tr.most != 2 {
		t.Fatalf("%d distinct blobs in flight at most across the two destinations, want exactly 2", tr.most)
	}
	for _, reg := range []*registrytest.Registry{f.reg, other} {
		assertImageOn(t, f, reg, "multi/app", "1", f.img.Target.Digest)
	}
}

// A destination that refuses the tag PUT itself, after every destination
// holds everything: the tags cannot move atomically across registries, so
// the others' have moved, and the error says which did and which did not.
func TestMultiPushTagRefusedSaysWhichTagsMoved(t *testing.T) {
	t.Parallel()
	f, _ := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 1, LayerSize: 64 << 10})
	other := registrytest.StartGGCR(t)
	refusing := registrytest.Start(t)
	proxy := faultproxy.Start(t, refusing.Host)
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/1.0") {
			return faultproxy.Fault{Status: http.StatusForbidden, Code: "DENIED"}
		}
		return faultproxy.Fault{}
	})
	dests := []string{f.reg.Host + "/multi/app:1.0", proxy.Host + "/multi/app:1.0", other.Host + "/multi/app:1.0"}
	results, err := f.svc.Push(f.ctx, f.name, WithDestination(dests[0]), WithDestination(dests[1]), WithDestination(dests[2]))
	var de *DestinationsError
	if !errors.As(err, &de) || proxy.Injected() != 1 {
		t.Fatalf("push: %v (%d faults injected), want a DestinationsError after the one refused tag", err, proxy.Injected())
	}
	if !strings.Contains(err.Error(), "2 tag(s) moved") {
		t.Fatalf("error does not say how many tags moved:\n%v", err)
	}
	for i, reg := range []*registrytest.Registry{f.reg, refusing, other} {
		_, _, _, tagged := reg.Manifest(t, "multi/app", "1.0")
		if tagged != (i != 1) || results[i].Tagged != tagged {
			t.Fatalf("%s: tagged %v, result says %v", dests[i], tagged, results[i].Tagged)
		}
	}
	if !strings.Contains(strings.Split(err.Error(), "\n")[2], "403") {
		t.Fatalf("the refusing destination's line does not say why:\n%v", err)
	}
}
