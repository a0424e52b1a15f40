package imageservice

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/delayproxy"
	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/mount"
	"github.com/ctrpush/ctrpush/progress"
	"github.com/ctrpush/ctrpush/store"
)

// blobRequests sorts the registry's blob requests for repo: mounts (with
// their source and status) and uploads.
type blobRequests struct {
	mounts  map[digest.Digest][]string // digest → "from:status" in order
	uploads []registrytest.Request     // PUTs to an upload session
}

func requestsFor(t *testing.T, reg *registrytest.Registry, repo string) blobRequests {
	t.Helper()
	br := blobRequests{mounts: map[digest.Digest][]string{}}
	for _, r := range reg.Requests(t) {
		if !strings.HasPrefix(r.Path, "/v2/"+repo+"/blobs/uploads/") {
			continue
		}
		q, _ := url.ParseQuery(r.Query)
		switch {
		case r.Method == http.MethodPost && q.Get("mount") != "":
			d := digest.Digest(q.Get("mount"))
			br.mounts[d] = append(br.mounts[d], q.Get("from")+":"+http.StatusText(r.Status))
		case r.Method == http.MethodPut:
			br.uploads = append(br.uploads, r)
		}
	}
	return br
}

// recorder collects progress events.
type recorder struct {
	mu     sync.Mutex
	events []progress.Event
}

func (r *recorder) Emit(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) mountedFrom() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for _, e := range r.events {
		if e.Transfer != nil && e.Transfer.State == progress.Mounted {
			out[e.Transfer.Digest] = e.Transfer.From
		}
	}
	return out
}

// blobsOf lists the config and layer digests of the image's manifests.
func blobsOf(img *testimage.Image, plats ...string) []digest.Digest {
	var out []digest.Digest
	for _, m := range img.Manifests {
		if plats != nil && !slices.Contains(plats, platforms.Format(m.Platform)) {
			continue
		}
		out = append(out, m.Config.Digest)
		for _, l := range m.Layers {
			out = append(out, l.Digest)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestPushToSecondRepositoryMountsEveryBlob(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2}, "bars/a:1.0")
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	f.reg.Reset(t)
	rec := &recorder{}
	res, err := f.svc.Push(f.ctx, f.name, WithDestination(f.reg.Host+"/bars/b"), WithProgress(rec))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Descriptor.Digest != f.img.Target.Digest {
		t.Fatalf("pushed %s", res[0].Descriptor.Digest)
	}
	f.assertManifest(t, "bars/b", "1.0", f.img.Target.Digest)
	br := requestsFor(t, f.reg, "bars/b")
	if len(br.uploads) != 0 {
		t.Fatalf("%d blob uploads to bars/b, want 0: %+v", len(br.uploads), br.uploads)
	}
	mounted := rec.mountedFrom()
	for _, d := range blobsOf(f.img) {
		if got := br.mounts[d]; !slices.Equal(got, []string{"bars/a:Created"}) {
			t.Fatalf("blob %s mount requests %q, want one from bars/a answered 201", d, got)
		}
		if mounted[d.String()] != "bars/a" {
			t.Fatalf("progress does not say %s was mounted from bars/a: %v", d, mounted)
		}
	}
	// The labels now name both repositories.
	info, err := f.store.ContentStore().Info(f.ctx, f.img.Manifests[0].Layers[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if v := info.Labels[mount.LabelKey(f.reg.Host)]; v != "bars/a,bars/b" {
		t.Fatalf("label %q, want bars/a,bars/b", v)
	}
}

// pulledService is a Service over a fresh empty store.
func pulledService(t *testing.T) (*store.Embedded, *Service) {
	t.Helper()
	st := openTestStore(t)
	svc, err := New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), WithNamespace("test"), WithHostPlatform(platforms.MustParse("linux/amd64")))
	if err != nil {
		t.Fatal(err)
	}
	return st, svc
}

func TestPullThenPushMounts(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2}, "bars/a:1.0")
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	st, svc := pulledService(t)
	pulled, err := svc.Pull(f.ctx, f.name, WithAllPlatforms())
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Descriptor.Digest != f.img.Target.Digest || len(pulled.Platforms) != 2 {
		t.Fatalf("pulled %+v", pulled)
	}
	for _, d := range f.img.Digests() {
		if _, err := st.ContentStore().Info(f.ctx, d); err != nil {
			t.Fatalf("pull --all-platforms lacks %s: %v", d, err)
		}
	}
	f.reg.Reset(t)
	if _, err := svc.Push(f.ctx, f.name, WithDestination(f.reg.Host+"/bars/c")); err != nil {
		t.Fatal(err)
	}
	f.assertManifest(t, "bars/c", "1.0", f.img.Target.Digest)
	br := requestsFor(t, f.reg, "bars/c")
	if len(br.uploads) != 0 {
		t.Fatalf("%d uploads, want all mounted", len(br.uploads))
	}
	for _, d := range blobsOf(f.img) {
		if !slices.Equal(br.mounts[d], []string{"bars/a:Created"}) {
			t.Fatalf("blob %s: mounts %q", d, br.mounts[d])
		}
	}
	// Pulling again fetches nothing.
	f.reg.Reset(t)
	if _, err := svc.Pull(f.ctx, f.name, WithAllPlatforms()); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.reg.Requests(t) {
		if r.Method == http.MethodGet && strings.Contains(r.Path, "/blobs/") {
			t.Fatalf("re-pull fetched %s", r.Path)
		}
	}
}

func TestPullOnePlatformThenPushWholeIndexMountsTheRest(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2}, "bars/a:1.0")
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	st, svc := pulledService(t)
	pulled, err := svc.Pull(f.ctx, f.name, WithPlatforms("linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pulled.Platforms) != 1 || platforms.Format(pulled.Platforms[0]) != "linux/arm64" {
		t.Fatalf("pulled platforms %v", pulled.Platforms)
	}
	for _, l := range f.img.Platform("linux/amd64").Layers {
		if _, err := st.ContentStore().Info(f.ctx, l.Digest); err == nil {
			t.Fatalf("pull --platform linux/arm64 fetched amd64 layer %s", l.Digest)
		}
	}
	// every manifest and config is local
	for _, m := range f.img.Manifests {
		for _, d := range []digest.Digest{m.Descriptor.Digest, m.Config.Digest} {
			if _, err := st.ContentStore().Info(f.ctx, d); err != nil {
				t.Fatalf("pull lacks %s: %v", d, err)
			}
		}
	}

	f.reg.Reset(t)
	res, err := svc.Push(f.ctx, f.name, WithDestination(f.reg.Host+"/bars/d"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Descriptor.Digest != f.img.Target.Digest {
		t.Fatalf("pushed %s, want the whole index %s", res[0].Descriptor.Digest, f.img.Target.Digest)
	}
	f.assertManifest(t, "bars/d", "1.0", f.img.Target.Digest)
	br := requestsFor(t, f.reg, "bars/d")
	if len(br.uploads) != 0 {
		t.Fatalf("%d uploads, want 0", len(br.uploads))
	}
	for _, l := range f.img.Platform("linux/amd64").Layers {
		if !slices.Equal(br.mounts[l.Digest], []string{"bars/a:Created"}) {
			t.Fatalf("amd64 layer %s: mounts %q", l.Digest, br.mounts[l.Digest])
		}
	}
}

// A second registry on the same host, another port: the label (host
// without port) names bars/a there, so a mount is tried, fails, and the
// push uploads. A registry of another host name is never asked to mount.
func TestNoMountAcrossRegistries(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2}, "bars/a:1.0")
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	other := registrytest.Start(t)
	if _, err := f.svc.Push(f.ctx, f.name, WithDestination(other.Host+"/bars/b:1.0")); err != nil {
		t.Fatal(err)
	}
	br := requestsFor(t, other, "bars/b")
	if n := len(br.uploads); n != len(blobsOf(f.img)) {
		t.Fatalf("%d uploads to the other registry, want %d", n, len(blobsOf(f.img)))
	}
	for d, m := range br.mounts {
		for _, r := range m {
			if !strings.HasSuffix(r, ":Accepted") {
				t.Fatalf("mount of %s on the other registry answered %q", d, r)
			}
		}
	}

	// Another host name entirely: no mount is even tried.
	st, svc := pulledService(t)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 9})
	if err := img.WriteToStore(f.ctx, st.ContentStore(), st.ImageStore(), other.Host+"/bars/x:1.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := labelAll(t, f.ctx, st.ContentStore(), img.Target, "registry.example.com", "bars/a"); err != nil {
		t.Fatal(err)
	}
	other.Reset(t)
	if _, err := svc.Push(f.ctx, other.Host+"/bars/x:1.0"); err != nil {
		t.Fatal(err)
	}
	if br := requestsFor(t, other, "bars/x"); len(br.mounts) != 0 {
		t.Fatalf("mounts tried across hosts: %v", br.mounts)
	}
}

// Labels key a registry by host without port, so a registry on another
// port of the same host looks like a mount source for the amd64 layers
// the store lacks. When those mounts fail, the push falls back to the
// manifest the store really holds (arm64), says so, and sends moby's
// ManifestPushedInsteadOfIndex aux (no platform was asked for).
func TestFallbackPicksWhatTheStoreHolds(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, Seed: 22}, "bars/a:1.0")
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	amd := f.img.Platform("linux/amd64")
	for _, l := range amd.Layers {
		if err := f.store.ContentStore().Delete(f.ctx, l.Digest); err != nil {
			t.Fatal(err)
		}
	}
	other := registrytest.Start(t)
	var stream strings.Builder
	res, err := f.svc.Push(f.ctx, f.name, WithDestination(other.Host+"/bars/b:1.0"), WithProgress(progress.NewJSON(&stream)))
	if err != nil {
		t.Fatalf("push: %v\n%s", err, stream.String())
	}
	arm := f.img.Platform("linux/arm64").Descriptor
	if !res[0].ManifestInsteadOfIndex || res[0].Descriptor.Digest != arm.Digest {
		t.Fatalf("pushed %+v, want the arm64 manifest %s instead of the index", res[0], arm.Digest)
	}
	got, _, _, ok := other.Manifest(t, "bars/b", "1.0")
	if !ok || got != arm.Digest {
		t.Fatalf("bars/b:1.0 on the other registry is %s (%v), want the arm64 manifest %s", got, ok, arm.Digest)
	}
	if br := requestsFor(t, other, "bars/b"); len(br.mounts[amd.Layers[0].Digest]) == 0 {
		t.Fatalf("no mount of the missing amd64 layer was tried: the fault did not happen (%v)", br.mounts)
	}
	out := stream.String()
	if !strings.Contains(out, "manifest pushed instead of index (linux/arm64)") || !strings.Contains(out, `"manifestPushedInsteadOfIndex":true`) {
		t.Fatalf("the stream does not say the arm64 manifest went instead of the index:\n%s", out)
	}
}

func TestMountForbiddenFallsBackToUpload(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2}, "bars/a:1.0")
	proxy := faultproxy.Start(t, f.reg.Host)
	name := proxy.Host + "/bars/a:1.0"
	if err := f.img.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), name); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Push(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
			return faultproxy.Fault{Status: http.StatusForbidden}
		}
		return faultproxy.Fault{}
	})
	f.reg.Reset(t)
	if _, err := f.svc.Push(f.ctx, name, WithDestination(proxy.Host+"/bars/b")); err != nil {
		t.Fatalf("a 403 on mount failed the push: %v", err)
	}
	if proxy.Injected() != len(blobsOf(f.img)) {
		t.Fatalf("%d mounts refused, want one per blob (%d)", proxy.Injected(), len(blobsOf(f.img)))
	}
	f.assertManifest(t, "bars/b", "1.0", f.img.Target.Digest)
	if br := requestsFor(t, f.reg, "bars/b"); len(br.uploads) != len(blobsOf(f.img)) {
		t.Fatalf("%d uploads, want %d", len(br.uploads), len(blobsOf(f.img)))
	}
}

func TestStaleMountSourceIsDropped(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2}, "bars/a:1.0")
	for _, dest := range []string{"bars/a", "bars/b"} {
		if _, err := f.svc.Push(f.ctx, f.name, WithDestination(f.reg.Host+"/"+dest)); err != nil {
			t.Fatal(err)
		}
	}
	// bars/a loses its blobs; the labels still name it.
	for _, d := range blobsOf(f.img) {
		f.reg.DeleteBlob(t, "bars/a", d)
	}
	f.reg.Reset(t)
	if _, err := f.svc.Push(f.ctx, f.name, WithDestination(f.reg.Host+"/bars/c")); err != nil {
		t.Fatal(err)
	}
	f.assertManifest(t, "bars/c", "1.0", f.img.Target.Digest)
	br := requestsFor(t, f.reg, "bars/c")
	if len(br.uploads) != 0 {
		t.Fatalf("%d uploads, want the next candidate to mount", len(br.uploads))
	}
	for _, d := range blobsOf(f.img) {
		if want := []string{"bars/a:Accepted", "bars/b:Created"}; !slices.Equal(br.mounts[d], want) {
			t.Fatalf("blob %s: mounts %q, want %q", d, br.mounts[d], want)
		}
		info, err := f.store.ContentStore().Info(f.ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if v := info.Labels[mount.LabelKey(f.reg.Host)]; v != "bars/b,bars/c" {
			t.Fatalf("blob %s label %q, want the stale bars/a gone: bars/b,bars/c", d, v)
		}
	}
	// No upload session was left open by the refused mounts.
	for _, r := range f.reg.Requests(t) {
		if r.Method == http.MethodDelete && strings.Contains(r.Path, "/blobs/uploads/") && r.Status != http.StatusNoContent {
			t.Fatalf("cancelling an upload session: %+v", r)
		}
	}
}

// A mount the registry answers 202 (the source lacks the blob, or the
// registry does not mount: the OCI distribution spec lets it open an
// upload session instead) is followed by the upload into that session: no
// DELETE of it, no POST for another. Per blob: the mount POST and the PUT.
// On the three real registries (Debian's has no request log: the push and
// its result only).
func TestMountAnsweredWithASessionUploadsIntoIt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *registrytest.Registry
		log   bool
	}{
		{"distribution v3", func(t testing.TB) *registrytest.Registry { return registrytest.Start(t) }, true},
		{"distribution 2.8 (Debian)", registrytest.StartDebian, false},
		{"go-containerregistry", func(t testing.TB) *registrytest.Registry { return registrytest.StartGGCR(t) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newPushFixtureOn(t, tc.start(t), testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3}, "into/a:1.0")
			if _, err := labelAll(t, f.ctx, f.store.ContentStore(), f.img.Target, f.reg.Host, "into/gone"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Push(f.ctx, f.name); err != nil {
				t.Fatal(err)
			}
			f.assertManifest(t, "into/a", "1.0", f.img.Target.Digest)
			if !tc.log {
				return
			}
			br := requestsFor(t, f.reg, "into/a")
			for _, d := range blobsOf(f.img) {
				if want := []string{"into/gone:Accepted"}; !slices.Equal(br.mounts[d], want) {
					t.Fatalf("blob %s: mounts %q, want %q", d, br.mounts[d], want)
				}
			}
			if len(br.uploads) != len(blobsOf(f.img)) {
				t.Fatalf("%d blob PUTs, want %d", len(br.uploads), len(blobsOf(f.img)))
			}
			for _, r := range f.reg.Requests(t) {
				q, _ := url.ParseQuery(r.Query)
				if strings.Contains(r.Path, "/blobs/uploads/") && (r.Method == http.MethodDelete || r.Method == http.MethodPost && q.Get("mount") == "") {
					t.Fatalf("%s %s?%s: the uploads should have gone into the sessions the mounts opened", r.Method, r.Path, r.Query)
				}
			}
		})
	}
}

func TestMountTriesAtMostThreeCandidates(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}}, "bars/a:1.0")
	// Labels name five repositories that do not have the blobs.
	for _, r := range []string{"x/one", "x/two", "x/three", "x/four", "x/five"} {
		if _, err := labelAll(t, f.ctx, f.store.ContentStore(), f.img.Target, f.reg.Host, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	br := requestsFor(t, f.reg, "bars/a")
	for _, d := range blobsOf(f.img) {
		if len(br.mounts[d]) != 3 {
			t.Fatalf("blob %s: %d mount attempts %q, want 3", d, len(br.mounts[d]), br.mounts[d])
		}
	}
	if len(br.uploads) != len(blobsOf(f.img)) {
		t.Fatalf("%d uploads after failed mounts, want %d", len(br.uploads), len(blobsOf(f.img)))
	}
}

// labelAll records repository path of registry in the distribution-source
// label of everything below root, as a push there would.
func labelAll(t *testing.T, ctx context.Context, cs content.Store, root ocispec.Descriptor, registry, path string) (int, error) {
	t.Helper()
	g, err := walkGraph(ctx, cs, root)
	if err != nil {
		return 0, err
	}
	var ds []digest.Digest
	for _, n := range g.order {
		ds = append(ds, n.desc.Digest)
	}
	return mount.WriteBack(ctx, cs, ds, registry, path, 1)
}

// A registry answering a mount with 201 and another digest in
// Docker-Content-Digest is checked like an upload: the push fails naming
// the blob and the repository, nothing above it is put, no tag moves.
func TestLyingMountAnswerFailsThePush(t *testing.T) {
	t.Parallel()
	f, proxy, name := faultFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, Seed: 61})
	if _, err := f.svc.Push(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	lie := digest.FromString("not the blob asked for")
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
			return faultproxy.Fault{Status: http.StatusCreated, Header: http.Header{"Docker-Content-Digest": {lie.String()}}}
		}
		return faultproxy.Fault{}
	})
	f.reg.Reset(t)
	_, err := f.svc.Push(f.ctx, name, WithDestination(proxy.Host+"/rel/other:1.0"))
	if !errdefs.IsDataLoss(err) || !strings.Contains(err.Error(), lie.String()) || !strings.Contains(err.Error(), "rel/other") {
		t.Fatalf("push through a lying mount: %v", err)
	}
	if proxy.Injected() == 0 {
		t.Fatal("no mount was answered: the test tested nothing")
	}
	if _, _, _, ok := f.reg.Manifest(t, "rel/other", "1.0"); ok {
		t.Fatal("the tag was set after a lying mount")
	}
}

// A push to a second repository mounts while its tag check is still on
// the way: the mounts need no answer from it. The proxy holds the check's
// answers (a registry slow to answer them); every mount must reach the
// registry before they come back, and the push uploads nothing.
// slowTagCheck records, behind a proxy that holds the tag check's answers,
// when the check was first asked and when the requests a test watches
// arrived.
type slowTagCheck struct {
	mu      sync.Mutex
	asked   time.Time
	watched []time.Time
}

// holdTagCheck makes proxy hold the answers to the tag HEAD and tags/list
// for hold, and record the requests watch picks.
func holdTagCheck(proxy *faultproxy.Proxy, hold time.Duration, watch func(*http.Request) bool) *slowTagCheck {
	c := &slowTagCheck{}
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/"),
			r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/tags/list"):
			if c.asked.IsZero() {
				c.asked = time.Now()
			}
			return faultproxy.Fault{DelayAnswer: hold}
		case r.Method == http.MethodPost && watch(r):
			c.watched = append(c.watched, time.Now())
		}
		return faultproxy.Fault{}
	})
	return c
}

func (c *slowTagCheck) seen() (asked time.Time, watched []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asked, append([]time.Time(nil), c.watched...)
}

// Nothing is written before the tag check answers, across a link too
// (the check held 400 ms by a proxy): not a mount of a blob the labels
// place in another repository, not an upload session. Dialing the
// connections the transfers will use is all that goes ahead.
func TestNothingWrittenBeforeTheTagCheckAnswers(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, LayerSize: 128 << 10}, "bars/a:1.0")
	proxy := faultproxy.Start(t, f.reg.Host)
	name := proxy.Host + "/bars/a:1.0"
	if err := f.img.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), name); err != nil {
		t.Fatal(err)
	}
	const hold = 400 * time.Millisecond
	isWrite := func(r *http.Request) bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }
	for _, tc := range []struct{ what, dest string }{
		{"a push to a new repository (uploads)", ""},
		{"a push to a second repository (mounts)", proxy.Host + "/bars/b"},
	} {
		slow := holdTagCheck(proxy, hold, isWrite)
		f.reg.Reset(t)
		var opts []TransferOption
		if tc.dest != "" {
			opts = append(opts, WithDestination(tc.dest))
		}
		if _, err := f.svc.Push(f.ctx, name, opts...); err != nil {
			t.Fatal(err)
		}
		checkAsked, writes := slow.seen()
		if checkAsked.IsZero() || len(writes) < len(blobsOf(f.img)) {
			t.Fatalf("%s: the proxy saw the check at %v and %d writes: the fault did not happen", tc.what, checkAsked, len(writes))
		}
		for _, at := range writes {
			if d := at.Sub(checkAsked); d < hold {
				t.Fatalf("%s: a write went %s after the tag check was asked, before its answer (held %s)", tc.what, d, hold)
			}
		}
	}
	br := requestsFor(t, f.reg, "bars/b")
	if len(br.uploads) != 0 || len(br.mounts) != len(blobsOf(f.img)) {
		t.Fatalf("%d uploads and %d blobs mounted; want 0 and %d", len(br.uploads), len(br.mounts), len(blobsOf(f.img)))
	}
	f.assertManifest(t, "bars/b", "1.0", f.img.Target.Digest)
}

// A re-push of an image the tag already names sends the tag check and
// nothing else, close by or across a link, whatever the labels say: here
// they name another repository (the tag was moved from another store), or
// nothing of the registry (a fresh store).
func TestRepushOfAnUnchangedImageSendsOnlyTheCheck(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 3, LayerSize: 128 << 10}, "bars/a:1.0")
	proxy := faultproxy.Start(t, f.reg.Host)
	for _, host := range []string{f.reg.Host, proxy.Host} {
		name := host + "/bars/a:1.0"
		if err := f.img.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), name); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Push(f.ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	// Another store puts the image under bars/b:1.0; this store's labels
	// name bars/a only.
	other, otherSvc := pulledService(t)
	if err := f.img.WriteToStore(f.ctx, other.ContentStore(), other.ImageStore(), f.reg.Host+"/bars/b:1.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := otherSvc.Push(f.ctx, f.reg.Host+"/bars/b:1.0"); err != nil {
		t.Fatal(err)
	}
	fresh, freshSvc := pulledService(t)
	for _, tc := range []struct {
		what string
		svc  *Service
		host string
		held bool
	}{
		{"labels naming another repository, close by", f.svc, f.reg.Host, false},
		{"labels naming another repository, across a link", f.svc, proxy.Host, true},
		{"a fresh store, across a link", freshSvc, proxy.Host, true},
	} {
		if tc.svc == freshSvc {
			if err := f.img.WriteToStore(f.ctx, fresh.ContentStore(), fresh.ImageStore(), tc.host+"/bars/a:1.0"); err != nil {
				t.Fatal(err)
			}
		}
		slow := holdTagCheck(proxy, 0, func(*http.Request) bool { return false })
		if tc.held {
			slow = holdTagCheck(proxy, 200*time.Millisecond, func(*http.Request) bool { return false })
		}
		f.reg.Reset(t)
		if _, err := tc.svc.Push(f.ctx, tc.host+"/bars/a:1.0", WithDestination(tc.host+"/bars/b")); err != nil {
			t.Fatal(err)
		}
		if asked, _ := slow.seen(); tc.held && asked.IsZero() {
			t.Fatalf("%s: the proxy did not hold the check: the link was not emulated", tc.what)
		}
		var got []string
		for _, r := range f.reg.Requests(t) {
			got = append(got, r.Method+" "+r.Path)
		}
		slices.Sort(got)
		if want := []string{"GET /v2/bars/b/tags/list", "HEAD /v2/bars/b/manifests/1.0"}; !slices.Equal(got, want) {
			t.Fatalf("%s: the re-push sent %q, want only the check %q", tc.what, got, want)
		}
	}
	f.assertManifest(t, "bars/b", "1.0", f.img.Target.Digest)
}

// Across a link, a mount push dials the connections its mounts use while
// the tag check is answered, and uses them: about one connection per blob,
// not two.
func TestMountPushUsesTheConnectionsDialedAhead(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 8}, "dial/a:1.0")
	// A link slow enough that the tag check is not answered within the
	// few milliseconds after which connections are dialed ahead.
	link, err := delayproxy.Start(f.reg.Host, delayproxy.Config{Delay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	name := link.Addr + "/dial/a:1.0"
	if err := f.img.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), name); err != nil {
		t.Fatal(err)
	}
	before := link.Connections()
	if _, err := f.svc.Push(f.ctx, name); err != nil {
		t.Fatal(err)
	}
	blobs := len(blobsOf(f.img))
	if up := link.Connections() - before; up < int64(blobs) {
		t.Fatalf("the first push opened %d connections for %d blobs: the link did not carry it", up, blobs)
	}
	f.reg.Reset(t)
	before = link.Connections()
	if _, err := f.svc.Push(f.ctx, name, WithDestination(link.Addr+"/dial/b")); err != nil {
		t.Fatal(err)
	}
	conns := link.Connections() - before
	if br := requestsFor(t, f.reg, "dial/b"); len(br.mounts) != blobs || len(br.uploads) != 0 {
		t.Fatalf("%d mounts and %d uploads, want %d and 0", len(br.mounts), len(br.uploads), blobs)
	}
	// One per mount, two for the tag check, one to spare.
	if conns > int64(blobs)+3 {
		t.Fatalf("the mount push opened %d connections for %d mounts", conns, blobs)
	}
	t.Logf("the mount push opened %d connections for %d mounts", conns, blobs)
}
