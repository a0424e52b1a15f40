package imageservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/moby/moby/api/types/auxprogress"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/progress"
	"github.com/ctrpush/ctrpush/store"
)

// pushFixture is a real embedded store with one image in it and a real
// registry.
type pushFixture struct {
	ctx   context.Context
	store *store.Embedded
	svc   *Service
	reg   *registrytest.Registry
	img   *testimage.Image
	name  string
}

func newPushFixture(t *testing.T, spec testimage.Spec, repoTag string, opts ...Option) *pushFixture {
	t.Helper()
	return newPushFixtureOn(t, registrytest.Start(t), spec, repoTag, opts...)
}

// newPushFixtureOn is newPushFixture on registry reg.
func newPushFixtureOn(t *testing.T, reg *registrytest.Registry, spec testimage.Spec, repoTag string, opts ...Option) *pushFixture {
	t.Helper()
	f := &pushFixture{ctx: testContext(t), store: openTestStore(t), reg: reg, img: testimage.MustNew(spec)}
	f.name = f.reg.Host + "/" + repoTag
	if err := f.img.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), f.name); err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithNamespace("test"), WithHostPlatform(platforms.MustParse("linux/amd64")), WithBatch(f.store.Batch)}, opts...)
	svc, err := New(f.store.ContentStore(), f.store.ImageStore(), f.store.LeaseManager(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

// assertManifest checks that repo:tag in the registry is exactly d and
// every blob it references is there with the bytes of the image.
func (f *pushFixture) assertManifest(t *testing.T, repo, tag string, d digest.Digest) {
	t.Helper()
	got, mt, body, ok := f.reg.Manifest(t, repo, tag)
	if !ok {
		t.Fatalf("registry has no %s:%s", repo, tag)
	}
	if got != d {
		t.Fatalf("registry %s:%s is %s, want %s", repo, tag, got, d)
	}
	var probe struct {
		MediaType string               `json:"mediaType"`
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    ocispec.Descriptor   `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		t.Fatal(err)
	}
	if probe.MediaType != mt {
		t.Fatalf("%s:%s served as %s but its body says %s", repo, tag, mt, probe.MediaType)
	}
	for _, m := range probe.Manifests {
		f.assertManifest(t, repo, m.Digest.String(), m.Digest)
	}
	for _, b := range append(probe.Layers, probe.Config) {
		if b.Digest == "" {
			continue
		}
		data, ok := f.reg.Blob(t, repo, b.Digest)
		if !ok {
			t.Fatalf("registry %s lacks blob %s", repo, b.Digest)
		}
		if digest.FromBytes(data) != b.Digest {
			t.Fatalf("registry %s blob %s has other bytes", repo, b.Digest)
		}
	}
}

func (f *pushFixture) assertNoLeases(t *testing.T) {
	t.Helper()
	ls, err := f.store.LeaseManager().List(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 0 {
		t.Fatalf("%d lease(s) left behind: %+v", len(ls), ls)
	}
}

func (f *pushFixture) countContent(t *testing.T) int {
	t.Helper()
	n := 0
	if err := f.store.ContentStore().Walk(f.ctx, func(content.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPushWholeIndex(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2}, "team/app:1.0")
	var mu sync.Mutex
	var events []progress.Event
	res, err := f.svc.Push(f.ctx, f.name, WithProgress(progress.SinkFunc(func(e progress.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Descriptor.Digest != f.img.Target.Digest || res[0].Tag != "1.0" {
		t.Fatalf("results %+v", res)
	}
	f.assertManifest(t, "team/app", "1.0", f.img.Target.Digest)
	f.assertNoLeases(t)
	if events[0].Message != "The push refers to repository ["+f.reg.Host+"/team/app]" {
		t.Fatalf("first event %+v", events[0])
	}
	last := events[len(events)-1]
	if last.Result == nil || last.Result.Digest != f.img.Target.Digest.String() || last.Result.Size != f.img.Target.Size {
		t.Fatalf("last event %+v", last)
	}
	pushed := map[string]bool{}
	for _, e := range events {
		if e.Transfer != nil && e.Transfer.State == progress.Pushed {
			pushed[e.Transfer.Digest] = true
		}
	}
	if len(pushed) != len(f.img.Blobs) {
		t.Fatalf("%d blobs reported pushed, the image has %d", len(pushed), len(f.img.Blobs))
	}

	// Re-push: nothing uploaded again, same digest.
	f.reg.Reset(t)
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	reqs := f.reg.Requests(t)
	for _, r := range reqs {
		if r.Method == "POST" || (r.Method == "PUT" && strings.Contains(r.Path, "/blobs/")) {
			t.Fatalf("re-push uploaded: %+v", r)
		}
	}
	// The tag's digest is checked first: one request, not one per blob.
	if len(reqs) > 2 {
		t.Fatalf("re-push of an unchanged image sent %d requests, want ≤ 2: %+v", len(reqs), reqs)
	}
	f.assertManifest(t, "team/app", "1.0", f.img.Target.Digest)
}

func TestPushPlatform(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}}, "team/app:1.0")
	res, err := f.svc.Push(f.ctx, f.name, WithPlatforms("linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	arm := f.img.Platform("linux/arm64").Descriptor
	if res[0].Descriptor.Digest != arm.Digest {
		t.Fatalf("pushed %s, want the arm64 manifest %s", res[0].Descriptor.Digest, arm.Digest)
	}
	f.assertManifest(t, "team/app", "1.0", arm.Digest)
	// the amd64 layers were not pushed
	for _, l := range f.img.Platform("linux/amd64").Layers {
		if _, ok := f.reg.Blob(t, "team/app", l.Digest); ok {
			t.Fatalf("amd64 layer %s pushed with --platform linux/arm64", l.Digest)
		}
	}
}

func TestPushSeveralPlatformsMakesNewIndex(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}, SharedLayers: 1, Layers: 2}, "team/app:1.0")
	before := f.countContent(t)
	res, err := f.svc.Push(f.ctx, f.name, WithPlatforms("linux/amd64", "linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].NewIndex || res[0].Descriptor.Digest == f.img.Target.Digest {
		t.Fatalf("want a new index, got %+v", res[0])
	}
	f.assertManifest(t, "team/app", "1.0", res[0].Descriptor.Digest)
	_, _, body, _ := f.reg.Manifest(t, "team/app", "1.0")
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 || idx.Manifests[0].Digest != f.img.Platform("linux/amd64").Descriptor.Digest ||
		idx.Manifests[1].Digest != f.img.Platform("linux/arm64").Descriptor.Digest || idx.Manifests[1].Platform == nil {
		t.Fatalf("new index %+v", idx.Manifests)
	}
	// the shared bottom layer was uploaded once
	shared := f.img.Platform("linux/amd64").Layers[0].Digest
	puts := 0
	for _, r := range f.reg.Requests(t) {
		if r.Method == "PUT" && strings.Contains(r.Query, shared.Encoded()) {
			puts++
		}
	}
	if puts != 1 {
		t.Fatalf("shared layer uploaded %d times, want 1", puts)
	}
	// the temporary index went with the lease
	f.assertNoLeases(t)
	if after := f.countContent(t); after != before {
		t.Fatalf("content count %d → %d: the push left content behind", before, after)
	}
}

// hidingStore reports some blobs as present (Info) but fails to read them,
// as a store whose content goes missing during a push would.
type hidingStore struct {
	content.Store
	hide map[digest.Digest]bool
}

func (h hidingStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if h.hide[desc.Digest] {
		return nil, errdefs.ErrNotFound
	}
	return h.Store.ReaderAt(ctx, desc)
}

func TestPushFallsBackToManifestWhenIndexContentMissing(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}}, "team/app:1.0")
	hs := hidingStore{Store: f.store.ContentStore(), hide: map[digest.Digest]bool{f.img.Platform("linux/arm64").Layers[0].Digest: true}}
	svc, err := New(hs, f.store.ImageStore(), f.store.LeaseManager(), WithNamespace("test"), WithHostPlatform(platforms.MustParse("linux/amd64")))
	if err != nil {
		t.Fatal(err)
	}
	var messages []string
	var mu sync.Mutex
	var stream bytes.Buffer
	jsonOut := progress.NewJSON(&stream)
	res, err := svc.Push(f.ctx, f.name, WithProgress(progress.SinkFunc(func(e progress.Event) {
		jsonOut.Emit(e)
		mu.Lock()
		defer mu.Unlock()
		if e.Message != "" {
			messages = append(messages, e.Message)
		}
		if e.Reduced != nil {
			messages = append(messages, e.Reduced.Text())
		}
	})))
	if err != nil {
		t.Fatal(err)
	}
	amd := f.img.Platform("linux/amd64").Descriptor.Digest
	if !res[0].ManifestInsteadOfIndex || res[0].Descriptor.Digest != amd {
		t.Fatalf("want the amd64 manifest instead of the index, got %+v", res[0])
	}
	f.assertManifest(t, "team/app", "1.0", amd)
	if !strings.Contains(strings.Join(messages, "\n"), "manifest pushed instead of index") {
		t.Fatalf("messages %q do not say manifest pushed instead of index", messages)
	}
	// Machine readers get moby's aux message, read with moby's own types.
	var note auxprogress.ManifestPushedInsteadOfIndex
	for _, line := range strings.Split(strings.TrimSpace(stream.String()), "\n") {
		var m jsonstream.Message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m.Aux != nil && strings.Contains(string(*m.Aux), "manifestPushedInsteadOfIndex") {
			if err := json.Unmarshal(*m.Aux, &note); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !note.ManifestPushedInsteadOfIndex || note.OriginalIndex.Digest != f.img.Target.Digest || note.SelectedManifest.Digest != amd {
		t.Fatalf("aux note %+v", note)
	}

	// An explicit platform whose content is missing: the push fails and
	// says so in moby's ContentMissing aux.
	stream.Reset()
	_, err = svc.Push(f.ctx, f.name, WithPlatforms("linux/arm64"), WithDestination(f.reg.Host+"/team/arm:1.0"), WithProgress(jsonOut))
	if err == nil {
		t.Fatal("push of a platform whose layer cannot be read succeeded")
	}
	var missing auxprogress.ContentMissing
	for _, line := range strings.Split(strings.TrimSpace(stream.String()), "\n") {
		var m jsonstream.Message
		_ = json.Unmarshal([]byte(line), &m)
		if m.Aux != nil && strings.Contains(string(*m.Aux), "contentMissing") {
			_ = json.Unmarshal(*m.Aux, &missing)
		}
	}
	if !missing.ContentMissing || missing.Desc.Digest != f.img.Platform("linux/arm64").Descriptor.Digest {
		t.Fatalf("content-missing aux %+v in %s", missing, stream.String())
	}

	// With an explicit --all-platforms there is no fallback.
	_, err = svc.Push(f.ctx, f.name, WithAllPlatforms(), WithDestination(f.reg.Host+"/team/other:1.0"))
	if err == nil || !errdefs.IsNotFound(err) {
		t.Fatalf("want a not-found error with --all-platforms, got %v", err)
	}
	f.assertNoLeases(t)
}

func TestPushUntaggedSourcePushesEveryTag(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}}, "team/app:1.0")
	other := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 7})
	if err := other.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), f.reg.Host+"/team/app:2.0"); err != nil {
		t.Fatal(err)
	}
	// an image of another repository is not pushed
	if err := other.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), f.reg.Host+"/team/app-other:3.0"); err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Push(f.ctx, f.reg.Host+"/team/app", WithDestination(f.reg.Host+"/mirror/app"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("pushed %d references, want 2: %+v", len(res), res)
	}
	f.assertManifest(t, "mirror/app", "1.0", f.img.Target.Digest)
	f.assertManifest(t, "mirror/app", "2.0", other.Target.Digest)
	if tags := f.reg.Tags(t, "mirror/app"); len(tags) != 2 {
		t.Fatalf("tags %v", tags)
	}
	if tags := f.reg.Tags(t, "team/app-other"); tags != nil {
		t.Fatalf("another repository was pushed: %v", tags)
	}
	// no local image was retagged
	if _, err := f.store.ImageStore().Get(f.ctx, f.reg.Host+"/mirror/app:1.0"); !errdefs.IsNotFound(err) {
		t.Fatalf("push created a local image: %v", err)
	}
}

func TestPushTrackerPerDestination(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2}, "team/app:1.0")
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	// The same service pushing to another repository must upload (or
	// mount) every blob there: nothing counts as present from the first.
	if _, err := f.svc.Push(f.ctx, f.name, WithDestination(f.reg.Host+"/team/second:1.0")); err != nil {
		t.Fatal(err)
	}
	f.assertManifest(t, "team/second", "1.0", f.img.Target.Digest)
}

func TestFailedPushLeavesStoreUnchanged(t *testing.T) {
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}}, "team/app:1.0")
	before := f.countContent(t)
	f.reg.Stop()
	_, err := f.svc.Push(f.ctx, f.name, WithPlatforms("linux/amd64", "linux/arm64"), WithDestination(f.reg.Host+"/team/app:2.0"))
	if err == nil {
		t.Fatal("push to a stopped registry succeeded")
	}
	if !strings.Contains(err.Error(), f.reg.Host) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("error does not name the unreachable host: %v", err)
	}
	f.assertNoLeases(t)
	if after := f.countContent(t); after != before {
		t.Fatalf("content count %d → %d after a failed push", before, after)
	}
	imgs, _ := f.store.ImageStore().List(f.ctx)
	if len(imgs) != 1 {
		t.Fatalf("images after failed push: %+v", imgs)
	}
}

func TestCancelledPushReleasesLease(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 4, LayerSize: 1 << 20}, "team/app:1.0")
	ctx, cancel := context.WithCancel(f.ctx)
	_, err := f.svc.Push(ctx, f.name, WithProgress(progress.SinkFunc(func(e progress.Event) {
		if e.Transfer != nil && e.Transfer.State == progress.Pushing && e.Transfer.Current > 0 {
			cancel()
		}
	})))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	f.assertNoLeases(t)
}

func TestPushErrors(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}}, "team/app:1.0")
	cases := []struct {
		name   string
		source string
		opts   []TransferOption
		check  func(error) bool
	}{
		{"malformed source", "team/App:1", nil, func(err error) bool {
			var re *ReferenceError
			return errors.As(err, &re) && errdefs.IsInvalidArgument(err)
		}},
		{"malformed destination", f.name, []TransferOption{WithDestination("bad//dest")}, func(err error) bool { var re *ReferenceError; return errors.As(err, &re) }},
		{"digest source", f.reg.Host + "/team/app@" + f.img.Target.Digest.String(), nil, func(err error) bool { var re *ReferenceError; return errors.As(err, &re) }},
		{"unknown image", f.reg.Host + "/team/nope:1", nil, func(err error) bool {
			var nf *ImageNotFoundError
			return errors.As(err, &nf) && errdefs.IsNotFound(err)
		}},
		{"unknown repository", f.reg.Host + "/team/nope", nil, func(err error) bool { return errdefs.IsNotFound(err) }},
		{"absent platform", f.name, []TransferOption{WithPlatforms("linux/s390x")}, func(err error) bool {
			var nf *PlatformNotFoundError
			return errors.As(err, &nf) && strings.Contains(err.Error(), "linux/s390x") && strings.Contains(err.Error(), "linux/amd64")
		}},
		{"bad platform", f.name, []TransferOption{WithPlatforms("linux/amd64/v9/x")}, func(err error) bool { var re *ReferenceError; return errors.As(err, &re) }},
		{"untagged source, tagged destination", f.reg.Host + "/team/app", []TransferOption{WithDestination(f.reg.Host + "/x:1")}, func(err error) bool { var re *ReferenceError; return errors.As(err, &re) }},
		{"zero uploads", f.name, []TransferOption{WithMaxConcurrentUploads(0)}, errdefs.IsInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Push(f.ctx, tc.source, tc.opts...)
			if err == nil || !tc.check(err) {
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
	if reqs := f.reg.Requests(t); len(reqs) != 0 {
		t.Fatalf("bad input reached the registry: %+v", reqs)
	}
	f.assertNoLeases(t)
}

// A push to a repository the registry says does not exist (tags/list:
// NAME_UNKNOWN) sends no HEAD before each blob upload; a push to a
// repository that exists still asks.
func TestNewRepositorySkipsBlobHeads(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, Seed: 41}, "fresh/app:1")
	heads := func() (blobHeads, tagLists int) {
		for _, r := range f.reg.Requests(t) {
			switch {
			case r.Method == http.MethodHead && strings.Contains(r.Path, "/blobs/"):
				blobHeads++
			case r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/tags/list"):
				tagLists++
			}
		}
		return
	}
	f.reg.Reset(t)
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	f.assertManifest(t, "fresh/app", "1", f.img.Target.Digest)
	if h, l := heads(); h != 0 || l != 1 {
		t.Fatalf("push to a new repository: %d blob HEADs, %d tags/list; want 0 and 1", h, l)
	}

	other := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, Seed: 42})
	if err := other.WriteToStore(f.ctx, f.store.ContentStore(), f.store.ImageStore(), f.reg.Host+"/fresh/app:2"); err != nil {
		t.Fatal(err)
	}
	f.reg.Reset(t)
	if _, err := f.svc.Push(f.ctx, f.reg.Host+"/fresh/app:2"); err != nil {
		t.Fatal(err)
	}
	if h, _ := heads(); h == 0 {
		t.Fatal("push to an existing repository sent no blob HEAD")
	}
	got, _, _, ok := f.reg.Manifest(t, "fresh/app", "2")
	if !ok || got != other.Target.Digest {
		t.Fatalf("fresh/app:2 is %s, want %s", got, other.Target.Digest)
	}
}

// A blob beyond the bound of uploads in flight shows Waiting before it
// goes, as docker push shows the layers beyond its concurrency; with room
// for all of them, none waits.
func TestPushShowsWaitingBeyondTheBound(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 4}, "team/waiting:1.0")
	states := func(opts ...TransferOption) map[string][]progress.State {
		var mu sync.Mutex
		out := map[string][]progress.State{}
		opts = append(opts, WithProgress(progress.SinkFunc(func(e progress.Event) {
			if e.Transfer != nil {
				mu.Lock()
				out[e.Transfer.Digest] = append(out[e.Transfer.Digest], e.Transfer.State)
				mu.Unlock()
			}
		})))
		if _, err := f.svc.Push(f.ctx, f.name, opts...); err != nil {
			t.Fatal(err)
		}
		return out
	}
	waited := 0
	for d, ss := range states(WithMaxConcurrentUploads(1), WithDestination(f.reg.Host+"/team/waiting-one:1.0")) {
		i := slices.Index(ss, progress.Waiting)
		if i < 0 {
			continue
		}
		waited++
		if i == 0 || ss[0] != progress.Preparing || !slices.Contains(ss[i:], progress.Pushed) || slices.Contains(ss[:i], progress.Pushing) {
			t.Fatalf("%s: states %v: want Preparing, Waiting, then Pushing to Pushed", d, ss)
		}
	}
	// 5 blobs (config and 4 layers), one at a time: the 4 behind the
	// first wait.
	if waited != 4 {
		t.Fatalf("%d blobs showed Waiting with one upload at a time, want 4", waited)
	}
	for d, ss := range states(WithDestination(f.reg.Host + "/team/waiting-all:1.0")) {
		if slices.Contains(ss, progress.Waiting) {
			t.Fatalf("%s waited with room for every blob: %v", d, ss)
		}
	}
}
