package imageservice

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/mount"
	"github.com/ctrpush/ctrpush/progress"
)

// faultFixture is a push fixture whose image is named for a fault proxy
// in front of the real registry.
func faultFixture(t *testing.T, spec testimage.Spec) (*pushFixture, *faultproxy.Proxy, string) {
	t.Helper()
	f := newPushFixture(t, spec, "rel/app:1.0")
	proxy := faultproxy.Start(t, f.reg.Host)
	name := proxy.Host + "/rel/app:1.0"
	if err := f.img.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), name); err != nil {
		t.Fatal(err)
	}
	return f, proxy, name
}

func isBlobPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")
}

func manifestPuts(t *testing.T, reg *registrytest.Registry) int {
	n := 0
	for _, r := range reg.Requests(t) {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/manifests/") {
			n++
		}
	}
	return n
}

// fastRetries retries as the default policy does, with millisecond waits:
// the tests prove the retries, not the waits.
var fastRetries = WithRetryPolicy(RetryPolicy{MaxRetries: DefaultMaxRetries, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	RetryAfterCap: time.Minute, Statuses: DefaultRetryPolicy.Statuses})

// 503 on the first two PUTs of every blob: the push succeeds, every blob
// is in the registry with its digest, and progress said Retrying.
func TestRetriesTransientFaults(t *testing.T) {
	t.Parallel()
	f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 128 << 10})
	var mu sync.Mutex
	puts := map[string]int{}
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if !isBlobPut(r) {
			return faultproxy.Fault{}
		}
		d := r.URL.Query().Get("digest")
		mu.Lock()
		defer mu.Unlock()
		puts[d]++
		if puts[d] <= 2 {
			return faultproxy.Fault{Status: http.StatusServiceUnavailable, Code: "UNAVAILABLE"}
		}
		return faultproxy.Fault{}
	})
	rec := &recorder{}
	if _, err := f.svc.Push(f.ctx, name, fastRetries, WithProgress(rec)); err != nil {
		t.Fatal(err)
	}
	f.assertManifest(t, "rel/app", "1.0", f.img.Target.Digest)
	for d, n := range puts {
		if n != 3 {
			t.Fatalf("blob %s was PUT %d times, want 3", d, n)
		}
	}
	retrying := 0
	for _, e := range rec.events {
		if e.Transfer != nil && e.Transfer.State == progress.Retrying {
			retrying++
		}
	}
	if retrying != 2*len(puts) {
		t.Fatalf("%d Retrying events, want %d", retrying, 2*len(puts))
	}
}

// 429 with Retry-After: 1 is waited out (not shortened by the fast policy); 429 without it is retried a
// bounded number of times and the error names the status.
func TestTooManyRequests(t *testing.T) {
	f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}})
	var mu sync.Mutex
	first := true
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPost && first {
			first = false
			return faultproxy.Fault{Status: http.StatusTooManyRequests, Code: "TOOMANYREQUESTS", Header: http.Header{"Retry-After": {"1"}}}
		}
		return faultproxy.Fault{}
	})
	start := time.Now()
	if _, err := f.svc.Push(f.ctx, name, fastRetries); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("pushed after %s: Retry-After: 1 not honoured", waited)
	}
	f.assertManifest(t, "rel/app", "1.0", f.img.Target.Digest)

	// A failed upload frees its room before its failure cancels the push;
	// widen that window: nothing may start in it.
	slowFree := withLimiterHooks(&limiterHooks{freed: func(error) { time.Sleep(200 * time.Millisecond) }})
	attempts := 0
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPost {
			if r.URL.Query().Get("mount") == "" { // mounts are refused too, but not counted
				mu.Lock()
				attempts++
				mu.Unlock()
			}
			return faultproxy.Fault{Status: http.StatusTooManyRequests, Code: "TOOMANYREQUESTS"}
		}
		return faultproxy.Fault{}
	})
	_, err := f.svc.Push(f.ctx, name, WithDestination(proxy.Host+"/rel/limited:1.0"), fastRetries, WithMaxRetries(2), WithMaxConcurrentUploads(1), slowFree)
	if err == nil || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "TOOMANYREQUESTS") || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("endless 429: %v", err)
	}
	if attempts != 3 { // one blob at a time: the first one's three attempts end the push
		t.Fatalf("%d upload attempts, want 3", attempts)
	}
}

// The uploads that a failure stops do not hide it: with the default bound
// to a registry close by (8 uploads in flight) and 403 on every upload,
// those that go fail, the others stop without a request, and the push's
// error is the registry's 403, not "stopped". A test hook holds each failure
// between freeing its room and returning (not the stopped ones), so the
// stopped ones end first; another makes the registry close by however long
// its first answer took on a busy machine, so the near bound is always the
// one in use.
func TestFailureNotHiddenByTheUploadsItStops(t *testing.T) {
	f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 12})
	hooks := withLimiterHooks(&limiterHooks{near: true, freed: func(err error) {
		if !errors.Is(err, errStopped) {
			time.Sleep(200 * time.Millisecond)
		}
	}})
	var mu sync.Mutex
	posts := 0
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPost {
			mu.Lock()
			posts++
			mu.Unlock()
			return faultproxy.Fault{Status: http.StatusForbidden, Code: "DENIED"}
		}
		return faultproxy.Fault{}
	})
	_, err := f.svc.Push(f.ctx, name, hooks)
	if posts > nearUploads {
		t.Fatalf("%d uploads went at once: more than the near bound (%d)", posts, nearUploads)
	}
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "DENIED") || strings.Contains(err.Error(), "stopped") {
		t.Fatalf("push error %v; want the registry's 403", err)
	}
	if posts == 0 {
		t.Fatal("no upload request: the fault was never injected")
	}
	if n := manifestPuts(t, f.reg); n != 0 {
		t.Fatalf("%d manifest PUTs after failed blobs", n)
	}
}

// A referrer that fails is the push's error, not "stopped" from the
// referrer beside it that its failure stopped; and that one, never sent, is
// not recorded as in the registry. One upload at a time, shared by the two
// referrers of the image: the first referrer manifest PUT gets 403 while
// the other still waits for its turn, and a test hook holds the failure
// between freeing the room and returning.
func TestReferrerFailureNotHiddenByTheOneItStops(t *testing.T) {
	f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}})
	cs := f.store.ContentStore()
	sig := f.img.AddReferrer(f.img.Target, "x/sig", "sig", []byte("s1"))
	sbom := f.img.AddReferrer(f.img.Target, "x/sbom", "sbom", []byte("b"))
	if err := f.img.WriteToStore(f.ctx, cs, f.store.ImageStore(), name); err != nil {
		t.Fatal(err)
	}
	for _, r := range []ocispec.Descriptor{sig, sbom} {
		if err := linkReferrer(f.ctx, cs, f.img.Target.Digest, r.Digest); err != nil {
			t.Fatal(err)
		}
	}
	slowFree := withLimiterHooks(&limiterHooks{freed: func(error) { time.Sleep(200 * time.Millisecond) }})
	var mu sync.Mutex
	var refused digest.Digest
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPut && refused == "" && strings.Contains(r.URL.Path, "/manifests/sha256:") {
			refused = digest.Digest(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
			return faultproxy.Fault{Status: http.StatusForbidden, Code: "DENIED"}
		}
		return faultproxy.Fault{}
	})
	_, err := f.svc.Push(f.ctx, name, WithReferrers(), WithMaxConcurrentUploads(1), slowFree)
	if refused == "" {
		t.Fatalf("no referrer manifest was PUT (push error %v)", err)
	}
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "referrer "+refused.String()) || strings.Contains(err.Error(), "stopped") {
		t.Fatalf("push error %v; want the 403 on referrer %s", err, refused)
	}
	other := sig
	if refused == sig.Digest {
		other = sbom
	}
	if _, _, _, ok := f.reg.Manifest(t, "rel/app", other.Digest.String()); ok {
		t.Fatalf("referrer %s was PUT after the other failed", other.Digest)
	}
	info, err := cs.Info(f.ctx, other.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := info.Labels[mount.LabelKey(proxy.Host)]; ok {
		t.Fatalf("referrer %s was never pushed, yet its label says it is in %s (%s)", other.Digest, proxy.Host, v)
	}
}

// Permanent errors stop at once: one attempt, a message naming the blob,
// the repository and the registry's code, and no manifest is put.
func TestPermanentErrorsStopAtOnce(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		is     func(error) bool
	}{
		{http.StatusUnauthorized, "DENIED", errdefs.IsUnauthorized},
		{http.StatusForbidden, "DENIED", errdefs.IsPermissionDenied},
		{http.StatusNotFound, "NAME_UNKNOWN", errdefs.IsNotFound},
		{http.StatusBadRequest, "DIGEST_INVALID", errdefs.IsInvalidArgument},
	} {
		t.Run(tc.code+"-"+http.StatusText(tc.status), func(t *testing.T) {
			f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}})
			var mu sync.Mutex
			puts := 0
			proxy.SetRule(func(r *http.Request) faultproxy.Fault {
				if isBlobPut(r) {
					mu.Lock()
					puts++
					mu.Unlock()
					return faultproxy.Fault{Status: tc.status, Code: tc.code}
				}
				return faultproxy.Fault{}
			})
			f.reg.Reset(t)
			_, err := f.svc.Push(f.ctx, name, WithMaxConcurrentUploads(1))
			var re *RegistryError
			if !errors.As(err, &re) || !tc.is(err) || !strings.Contains(err.Error(), tc.code) || !strings.Contains(err.Error(), "rel/app") || !strings.Contains(err.Error(), "sha256:") {
				t.Fatalf("error %v", err)
			}
			if puts != 1 {
				t.Fatalf("%d blob PUTs, want exactly 1", puts)
			}
			if n := manifestPuts(t, f.reg); n != 0 {
				t.Fatalf("%d manifest PUTs after a failed blob", n)
			}
			f.assertNoLeases(t)
		})
	}
}

// --max-concurrent-uploads holds: the proxy never sees more blob PUTs in
// flight than allowed.
func TestUploadBoundHolds(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3} {
		f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 4, LayerSize: 64 << 10})
		proxy.Track(isBlobPut)
		proxy.SetRule(func(r *http.Request) faultproxy.Fault {
			if isBlobPut(r) {
				return faultproxy.Fault{Delay: 50 * time.Millisecond}
			}
			return faultproxy.Fault{}
		})
		if _, err := f.svc.Push(f.ctx, name, WithMaxConcurrentUploads(n)); err != nil {
			t.Fatal(err)
		}
		if got := proxy.MaxInFlight(); got != n {
			t.Fatalf("--max-concurrent-uploads %d: %d blob PUTs in flight at most (want exactly %d: the bound holds and is used)", n, got, n)
		}
	}
}

// A connection reset in the middle of a blob body: the blob is uploaded
// again in a new session, and no more than twice its bytes are sent.
func TestResetMidBodyRetriesTheBlob(t *testing.T) {
	t.Parallel()
	f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, LayerSize: 1 << 20})
	var mu sync.Mutex
	reset := map[string]bool{}
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if !isBlobPut(r) {
			return faultproxy.Fault{}
		}
		d := r.URL.Query().Get("digest")
		mu.Lock()
		defer mu.Unlock()
		if !reset[d] && r.ContentLength > 64<<10 {
			reset[d] = true
			return faultproxy.Fault{ResetAfter: 64 << 10}
		}
		return faultproxy.Fault{}
	})
	if _, err := f.svc.Push(f.ctx, name, fastRetries); err != nil {
		t.Fatal(err)
	}
	f.assertManifest(t, "rel/app", "1.0", f.img.Target.Digest)
	var total int64
	for _, b := range f.img.Blobs {
		total += int64(len(b))
	}
	sent := proxy.BodyBytes()
	t.Logf("%d body bytes sent for %d bytes of blobs (one body reset after 64 KiB)", sent, total)
	if sent > 2*total {
		t.Fatalf("%d body bytes sent for %d bytes of blobs", sent, total)
	}
	if len(reset) == 0 {
		t.Fatal("no body was reset: the test tested nothing")
	}
}

// flipByte flips one byte of blob d in the embedded store's files, as a
// failing disk would.
func (f *pushFixture) flipByte(t *testing.T, d digest.Digest) {
	t.Helper()
	path := filepath.Join(f.store.Root(), "content", "blobs", "sha256", d.Encoded())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x01
	_ = os.Chmod(path, 0o644)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// One flipped byte in a stored layer: the push fails naming the blob as
// corrupt, and neither a manifest nor the tag reaches the registry.
func TestCorruptLocalBlobIsNeverCommitted(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 64 << 10}, "rel/app:1.0")
	layer := f.img.Manifests[0].Layers[1].Digest
	f.flipByte(t, layer)
	_, err := f.svc.Push(f.ctx, f.name, WithMaxRetries(3))
	if err == nil || !errdefs.IsDataLoss(err) || !strings.Contains(err.Error(), layer.String()) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("push of a corrupt blob: %v", err)
	}
	if n := manifestPuts(t, f.reg); n != 0 {
		t.Fatalf("%d manifest PUTs after a corrupt blob", n)
	}
	if _, ok := f.reg.Blob(t, "rel/app", digest.Digest(layer)); ok {
		t.Fatal("the registry holds the corrupt blob's digest")
	}
	if _, _, _, ok := f.reg.Manifest(t, "rel/app", "1.0"); ok {
		t.Fatal("the tag exists after a failed push")
	}
}

// Deleting the image and collecting garbage in the middle of a push does
// not break it: the push's lease holds every blob.
// With containerd's gc.ref labels on the manifest the lease holds the
// blobs through it; without them (content written by a tool that sets
// none) each blob is held on its own.
func TestGarbageCollectionDuringPush(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		gcLabels bool
	}{{"gc.ref labels", true}, {"no gc.ref labels", false}} {
		t.Run(tc.name, func(t *testing.T) { gcDuringPush(t, tc.gcLabels) })
	}
}

func gcDuringPush(t *testing.T, gcLabels bool) {
	f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 1 << 20})
	if !gcLabels {
		if err := f.store.ContentStore().Walk(f.ctx, func(info content.Info) error {
			_, err := f.store.ContentStore().Update(f.ctx, content.Info{Digest: info.Digest}, "labels")
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	proxy.SetRate(2 << 20)
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		// One upload at a time: the blobs after the first are not open
		// yet when the collector runs.
		_, err := f.svc.Push(f.ctx, name, WithMaxConcurrentUploads(1), WithProgress(progress.SinkFunc(func(e progress.Event) {
			if e.Transfer != nil && e.Transfer.State == progress.Pushing {
				once.Do(func() { close(started) })
			}
		})))
		done <- err
	}()
	<-started
	for _, n := range []string{name, f.name} {
		if err := f.store.ImageStore().Delete(f.ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.GarbageCollect(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("push with the image deleted and GC run: %v", err)
	}
	f.assertManifest(t, "rel/app", "1.0", f.img.Target.Digest)
	// Released with the lease, the content is collected now.
	if err := f.store.GarbageCollect(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.countContent(t); n != 0 {
		t.Fatalf("%d blobs left after the lease went and GC ran", n)
	}
}

// Chaos: the proxy fails one request in ten at random (503 or a reset
// connection). Three images to three repositories each: every push
// succeeds or fails with a clear error, and every tag the registry holds
// resolves to the right digest with all its blobs.
func TestChaos(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 64 << 10, Seed: 70}, "chaos/seed:0")
	proxy := faultproxy.Start(t, f.reg.Host)
	var mu sync.Mutex
	rnd := rand.New(rand.NewPCG(7, 11))
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		mu.Lock()
		defer mu.Unlock()
		switch x := rnd.IntN(20); {
		case x == 0:
			return faultproxy.Fault{Status: http.StatusServiceUnavailable, Code: "UNAVAILABLE"}
		case x == 1:
			return faultproxy.Fault{Reset: true}
		}
		return faultproxy.Fault{}
	})
	imgs := map[string]*testimage.Image{}
	for i := 0; i < 3; i++ {
		img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 64 << 10, SharedLayers: 1, Seed: uint64(71 + i)})
		name := fmt.Sprintf("%s/chaos/img%d:1.0", proxy.Host, i)
		if err := img.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), name); err != nil {
			t.Fatal(err)
		}
		imgs[name] = img
	}
	succeeded := 0
	for name, img := range imgs {
		for r := 0; r < 3; r++ {
			dest := fmt.Sprintf("%s/chaos/repo%d", proxy.Host, r)
			_, err := f.svc.Push(f.ctx, name, WithDestination(dest), fastRetries, WithMaxRetries(4))
			if err != nil {
				if !strings.Contains(err.Error(), "push "+name) {
					t.Fatalf("unclear error: %v", err)
				}
				t.Logf("push %s to %s failed (allowed): %v", name, dest, err)
				continue
			}
			succeeded++
			repo := fmt.Sprintf("chaos/repo%d", r)
			f.assertManifest(t, repo, "1.0", img.Target.Digest)
		}
	}
	if succeeded == 0 {
		t.Fatal("no push got through the chaos")
	}
	if proxy.Injected() == 0 {
		t.Fatal("the chaos injected nothing")
	}
	f.assertNoLeases(t)
}

// A registry that takes 45 s to answer the final PUT of a blob (a slow
// commit) does not break the push: nothing times out and nothing is
// uploaded twice. containerd's own transport gives up after 30 s.
func TestSlowCommitIsWaitedFor(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 45 s")
	}
	t.Parallel()
	f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 1, LayerSize: 256 << 10})
	layer := f.img.Manifests[0].Layers[0].Digest.String()
	var mu sync.Mutex
	puts := map[string]int{}
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if !isBlobPut(r) {
			return faultproxy.Fault{}
		}
		d := r.URL.Query().Get("digest")
		mu.Lock()
		puts[d]++
		mu.Unlock()
		if d == layer {
			return faultproxy.Fault{DelayAnswer: 45 * time.Second}
		}
		return faultproxy.Fault{}
	})
	start := time.Now()
	if _, err := f.svc.Push(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 45*time.Second {
		t.Fatalf("push took %s: the slow answer was not waited for", took)
	}
	f.assertManifest(t, "rel/app", "1.0", f.img.Target.Digest)
	mu.Lock()
	defer mu.Unlock()
	if puts[layer] != 1 {
		t.Fatalf("the slow layer was PUT %d times, want 1", puts[layer])
	}
}

// withLimiterHooks hands the push's limiters h: timing a test controls.
func withLimiterHooks(h *limiterHooks) TransferOption {
	return func(o *transferOptions) error { o.limiterHooks = h; return nil }
}
