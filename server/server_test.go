package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/progress"
	"github.com/ctrpush/ctrpush/store"
)

func TestMain(m *testing.M) {
	_ = log.SetLevel("warn") // no line per API request in test output
	os.Exit(m.Run())
}

// fixture is a server on a unix socket over a real embedded store.
type fixture struct {
	store  *store.Embedded
	svc    *imageservice.Service
	sock   string
	client *http.Client
	stop   context.CancelFunc
	served chan error
}

func newFixture(t *testing.T, grace time.Duration) *fixture {
	t.Helper()
	st, err := store.OpenEmbedded(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc, err := imageservice.New(st.ContentStore(), st.ImageStore(), st.LeaseManager(),
		imageservice.WithNamespace("test"), imageservice.WithHostPlatform(platforms.MustParse("linux/amd64")), imageservice.WithBatch(st.Batch))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Service: svc, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st, svc: svc, sock: filepath.Join(t.TempDir(), "ctrpush.sock"), served: make(chan error, 1)}
	l, warning, err := Listen("unix://" + f.sock)
	if err != nil || warning != "" {
		t.Fatalf("listen: %v %q", err, warning)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	go func() { f.served <- srv.Serve(ctx, l, grace) }()
	t.Cleanup(func() {
		cancel()
		<-f.served
	})
	f.client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", f.sock)
	}}}
	return f
}

// add writes img into the store under name.
func (f *fixture) add(t *testing.T, img *testimage.Image, name string) {
	t.Helper()
	ctx := namespaces.WithNamespace(t.Context(), "test")
	if err := img.WriteToStore(ctx, f.store.ContentStore(), f.store.ImageStore(), name); err != nil {
		t.Fatal(err)
	}
}

// importLayout imports img as an OCI layout named repo:tag, so that the
// referrers the layout carries are kept as import keeps them.
func (f *fixture) importLayout(t *testing.T, img *testimage.Image, repo, tag string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	if err := img.WriteOCILayout(dir, testimage.NameAnnotations(repo+":"+tag, tag)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Import(namespaces.WithNamespace(t.Context(), "test"), dir); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) do(t *testing.T, method, path string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://ctrpush"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// pushResult is what a client read from a push stream.
type pushResult struct {
	status   int
	messages []jsonstream.Message
	aux      []progress.PushAux
	err      string
	raw      string
	readErr  error // the stream broke off
}

func (f *fixture) push(t *testing.T, name, tag string, header http.Header) pushResult {
	t.Helper()
	resp := f.do(t, http.MethodPost, "/v1.50/images/"+name+"/push?tag="+tag, header)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := pushResult{status: resp.StatusCode, raw: string(b), readErr: err}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		_ = json.Unmarshal(b, &e)
		r.err = e.Message
		return r
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		var m jsonstream.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stream line %q: %v", sc.Text(), err)
		}
		r.messages = append(r.messages, m)
		if m.Error != nil {
			r.err = m.Error.Message
		}
		if m.Aux != nil {
			var a progress.PushAux
			if err := json.Unmarshal(*m.Aux, &a); err == nil && a.Digest != "" {
				r.aux = append(r.aux, a)
			}
		}
	}
	return r
}

// assertPushed checks repo:tag in reg is d and every blob of img is there.
func assertPushed(t *testing.T, reg *registrytest.Registry, repo, tag string, img *testimage.Image) {
	t.Helper()
	got, _, _, ok := reg.Manifest(t, repo, tag)
	if !ok || got != img.Target.Digest {
		t.Fatalf("%s: %s:%s is %s (present %v), want %s", reg.Host, repo, tag, got, ok, img.Target.Digest)
	}
	for _, d := range blobsOf(img) {
		if _, ok := reg.Blob(t, repo, d); !ok {
			t.Fatalf("%s: %s lacks blob %s", reg.Host, repo, d)
		}
	}
}

// blobsOf lists the configs and layers of img (not its manifests).
func blobsOf(img *testimage.Image) []digest.Digest {
	var out []digest.Digest
	seen := map[digest.Digest]bool{}
	for _, m := range img.Manifests {
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				out = append(out, d.Digest)
			}
		}
	}
	return out
}

// 10 pushes at once: 5 references × 2 registries, the same repository
// names on both. All succeed with the right digests and each registry
// holds every blob: nothing was shared across registries.
func TestConcurrentPushesToTwoRegistries(t *testing.T) {
	f := newFixture(t, 10*time.Second)
	regs := []*registrytest.Registry{registrytest.Start(t), registrytest.Start(t)}
	imgs := map[string]*testimage.Image{}
	for i := range 5 {
		img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 64 << 10, Seed: uint64(100 + i)})
		repo := fmt.Sprintf("team/app%d", i)
		imgs[repo] = img
		for _, reg := range regs {
			f.add(t, img, reg.Host+"/"+repo+":1.0")
		}
	}
	var wg sync.WaitGroup
	results := make(chan string, 10)
	for repo, img := range imgs {
		for _, reg := range regs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := f.push(t, reg.Host+"/"+repo, "1.0", nil)
				switch {
				case r.status != http.StatusOK || r.err != "":
					results <- fmt.Sprintf("%s/%s: %d %s", reg.Host, repo, r.status, r.err)
				case len(r.aux) != 1 || r.aux[0].Digest != img.Target.Digest.String() || r.aux[0].Tag != "1.0":
					results <- fmt.Sprintf("%s/%s: aux %+v, want %s", reg.Host, repo, r.aux, img.Target.Digest)
				}
			}()
		}
	}
	wg.Wait()
	close(results)
	for msg := range results {
		t.Error(msg)
	}
	for repo, img := range imgs {
		for _, reg := range regs {
			assertPushed(t, reg, repo, "1.0", img)
		}
	}
}

// Two identical pushes at once share one transfer: every blob is uploaded
// once and both clients see the whole stream.
func TestIdenticalPushesShareATransfer(t *testing.T) {
	f := newFixture(t, 10*time.Second)
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 1 << 20, Seed: 7})
	f.add(t, img, proxy.Host+"/team/shared:1.0")
	proxy.SetRate(2 << 20) // about a second: the second client joins mid-push

	first := make(chan pushResult, 1)
	go func() { first <- f.push(t, proxy.Host+"/team/shared", "1.0", nil) }()
	waitFor(t, func() bool {
		for _, r := range reg.Requests(t) {
			if r.Method == http.MethodPatch || r.Method == http.MethodPut {
				return true
			}
		}
		return false
	})
	second := f.push(t, proxy.Host+"/team/shared", "1.0", nil)
	one := <-first
	for _, r := range []pushResult{one, second} {
		if r.err != "" || len(r.aux) != 1 || r.aux[0].Digest != img.Target.Digest.String() {
			t.Fatalf("push: %d %q aux %+v\n%s", r.status, r.err, r.aux, r.raw)
		}
	}
	if !strings.HasPrefix(second.raw, `{"status":"The push refers to repository [`+proxy.Host+`/team/shared]"}`) {
		t.Fatalf("the second client did not get the stream from its start:\n%s", second.raw)
	}
	uploads := map[string]int{}
	for _, r := range reg.Requests(t) {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/") {
			uploads[r.Query]++
		}
	}
	if len(uploads) != len(blobsOf(img)) {
		t.Fatalf("%d blob uploads, want %d (one per blob): %v", len(uploads), len(blobsOf(img)), uploads)
	}
	for q, n := range uploads {
		if n != 1 {
			t.Fatalf("upload %s happened %d times", q, n)
		}
	}
	assertPushed(t, reg, "team/shared", "1.0", img)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Requests the server refuses, each with Docker's status and a message
// that says what is wrong; a refused push writes nothing to the registry.
func TestRefusals(t *testing.T) {
	f := newFixture(t, time.Second)
	reg := registrytest.Start(t)
	f.add(t, testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}}), reg.Host+"/team/app:1.0")
	for _, tc := range []struct {
		method, path string
		header       http.Header
		status       int
		want         string
	}{
		{"POST", "/v1.50/images/" + reg.Host + "/team/nope/push?tag=1", nil, 404, "An image does not exist locally with the tag: " + reg.Host + "/team/nope"},
		{"POST", "/v1.50/images/" + reg.Host + "/team/nope/push", nil, 404, "An image does not exist locally with the tag: " + reg.Host + "/team/nope"},
		{"POST", "/v1.50/images/Team/App/push?tag=1", nil, 400, `invalid reference "Team/App"`},
		{"POST", "/v1.50/images/" + reg.Host + "/team/app/push?tag=bad:tag", nil, 400, `invalid tag "bad:tag"`},
		{"POST", "/v1.50/images/" + reg.Host + "/team/app/push?tag=1.0", http.Header{"X-Registry-Auth": {"%%%"}}, 400, "invalid X-Registry-Auth header"},
		{"POST", "/v1.50/images/" + reg.Host + "/team/app/push?tag=1.0&platform=linux%2Famd64%2Fv9%2Fx", nil, 400, "invalid platform"},
		{"POST", "/v1.50/images/" + reg.Host + "/team/app:1.0/tag?repo=Bad//Name", nil, 400, `invalid target "Bad//Name"`},
		{"GET", "/v1.50/images/" + reg.Host + "/team/nope:1/json", nil, 404, "No such image: " + reg.Host + "/team/nope:1"},
		{"POST", "/v1.50/containers/create", nil, 404, "ctrpush serves only the image-distribution subset of the Docker Engine API"},
		{"POST", "/v1.50/build", nil, 404, "ctrpush serves only the image-distribution subset"},
		{"GET", "/v1.24/version", nil, 400, "client version 1.24 is too old. Minimum supported API version is 1.40"},
		{"GET", "/v1.99/version", nil, 400, "client version 1.99 is too new"},
	} {
		resp := f.do(t, tc.method, tc.path, tc.header)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Message string }
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: not a JSON error body: %q", tc.method, tc.path, b)
		}
		if resp.StatusCode != tc.status || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, e.Message, tc.status, tc.want)
		}
		if resp.Header.Get("Api-Version") != APIVersion {
			t.Errorf("%s %s: Api-Version %q", tc.method, tc.path, resp.Header.Get("Api-Version"))
		}
	}
	for _, r := range reg.Requests(t) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			t.Fatalf("a refused request wrote to the registry: %+v", r)
		}
	}
}

// Ping, version, tag, list and inspect answer what the docker CLI reads.
func TestImageEndpoints(t *testing.T) {
	f := newFixture(t, time.Second)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: 3})
	f.add(t, img, "example.com/team/app:1.0")

	resp := f.do(t, http.MethodHead, "/_ping", nil)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Api-Version") != APIVersion || resp.Header.Get("Ostype") == "" {
		t.Fatalf("ping: %d %v", resp.StatusCode, resp.Header)
	}
	var v struct{ APIVersion, MinAPIVersion string }
	getJSON(t, f, "/v1.50/version", &v)
	if v.APIVersion != APIVersion || v.MinAPIVersion != MinAPIVersion {
		t.Fatalf("version: %+v", v)
	}

	resp = f.do(t, http.MethodPost, "/v1.50/images/example.com/team/app:1.0/tag?repo=example.com/team/copy&tag=2", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("tag: %d", resp.StatusCode)
	}
	var list []struct {
		ID       string `json:"Id"`
		RepoTags []string
		Size     int64
	}
	getJSON(t, f, "/v1.50/images/json", &list)
	if len(list) != 1 || list[0].ID != img.Target.Digest.String() || strings.Join(list[0].RepoTags, ",") != "example.com/team/app:1.0,example.com/team/copy:2" || list[0].Size == 0 {
		t.Fatalf("images/json: %+v", list)
	}
	for filter, want := range map[string]int{
		`{"reference":{"example.com/team/app":true}}`: 1, `{"reference":{"example.com/team/*:2":true}}`: 1,
		`{"reference":{"example.com/other":true}}`: 0, `{"dangling":{"false":true}}`: 1,
	} {
		getJSON(t, f, "/v1.50/images/json?filters="+url.QueryEscape(filter), &list)
		if len(list) != want {
			t.Fatalf("images/json filters %s: %d images, want %d", filter, len(list), want)
		}
	}
	resp = f.do(t, http.MethodGet, "/v1.50/images/json?filters="+url.QueryEscape(`{"label":{"a=b":true}}`), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an unsupported filter: %d, want 400", resp.StatusCode)
	}
	var in struct {
		ID           string `json:"Id"`
		RepoTags     []string
		Architecture string
		Os           string
		RootFS       struct{ Layers []string }
	}
	for _, name := range []string{"example.com/team/copy:2", img.Target.Digest.Encoded()[:12]} {
		getJSON(t, f, "/v1.50/images/"+name+"/json", &in)
		if in.ID != img.Target.Digest.String() || in.Architecture != "amd64" || in.Os != "linux" || len(in.RootFS.Layers) != 1 || len(in.RepoTags) != 2 {
			t.Fatalf("inspect %s: %+v", name, in)
		}
	}
}

func getJSON(t *testing.T, f *fixture, path string, v any) {
	t.Helper()
	resp := f.do(t, http.MethodGet, path, nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// X-Registry-Auth reaches the registry for that push only: a push with
// the right credentials succeeds, the same push without them fails with
// the registry's answer, and a wrong password fails too.
func TestRegistryAuthPerRequest(t *testing.T) {
	f := newFixture(t, time.Second)
	reg := registrytest.StartHtpasswd(t, "pusher", "s3cret-Pa55")
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 9})
	f.add(t, img, reg.Host+"/team/app:1.0")
	header := func(user, pass string) http.Header {
		b, _ := json.Marshal(map[string]string{"username": user, "password": pass, "serveraddress": reg.Host})
		return http.Header{"X-Registry-Auth": {base64.URLEncoding.EncodeToString(b)}}
	}
	if r := f.push(t, reg.Host+"/team/app", "1.0", http.Header{"X-Registry-Auth": {base64.URLEncoding.EncodeToString([]byte("{}"))}}); r.err == "" {
		t.Fatal("an anonymous push to an htpasswd registry succeeded")
	}
	if r := f.push(t, reg.Host+"/team/app", "1.0", header("pusher", "wrong")); r.err == "" {
		t.Fatal("a push with a wrong password succeeded")
	}
	if r := f.push(t, reg.Host+"/team/app", "1.0", header("pusher", "s3cret-Pa55")); r.err != "" {
		t.Fatalf("push with credentials: %s", r.err)
	}
	assertPushed(t, reg, "team/app", "1.0", img)
	if r := f.push(t, reg.Host+"/team/app", "1.0", nil); r.err == "" {
		t.Fatal("credentials of an earlier request were used for a later anonymous one")
	}
}

// Stopping the server lets a running push run for the grace period, then
// cancels it: the client's stream ends with an error, no lease is left
// and the store holds what it held.
func TestShutdownCancelsRunningPushes(t *testing.T) {
	f := newFixture(t, 500*time.Millisecond)
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, LayerSize: 8 << 20, Seed: 11})
	f.add(t, img, proxy.Host+"/team/slow:1.0")
	proxy.SetRate(1 << 20)
	got := make(chan pushResult, 1)
	go func() { got <- f.push(t, proxy.Host+"/team/slow", "1.0", nil) }()
	waitFor(t, func() bool { return proxy.BodyBytes() > 0 })
	start := time.Now()
	f.stop()
	if err := <-f.served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	f.served <- nil // for the cleanup
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("shutdown took %s with a 500ms grace", took)
	}
	r := <-got
	if r.readErr != nil || r.err == "" {
		t.Fatalf("the cancelled push's stream ended without an error:\n%s", r.raw)
	}
	ctx := namespaces.WithNamespace(context.Background(), "test")
	ls, err := f.store.LeaseManager().List(ctx)
	if err != nil || len(ls) != 0 {
		t.Fatalf("leases after shutdown: %v %v", ls, err)
	}
	if _, _, _, ok := reg.Manifest(t, "team/slow", "1.0"); ok {
		t.Fatal("the cancelled push wrote the tag")
	}
	if _, err := os.Stat(f.sock); !os.IsNotExist(err) {
		t.Fatalf("the socket is still there after shutdown: %v", err)
	}
}

// A client that goes away cancels its push (nobody else watches it).
func TestClientGoneCancelsPush(t *testing.T) {
	f := newFixture(t, time.Second)
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, LayerSize: 8 << 20, Seed: 12})
	f.add(t, img, proxy.Host+"/team/gone:1.0")
	proxy.SetRate(1 << 20)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://ctrpush/v1.50/images/"+proxy.Host+"/team/gone/push?tag=1.0", nil)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return proxy.BodyBytes() > 0 })
	cancel()
	resp.Body.Close()
	lctx := namespaces.WithNamespace(context.Background(), "test")
	waitFor(t, func() bool {
		ls, err := f.store.LeaseManager().List(lctx)
		return err == nil && len(ls) == 0
	})
	if _, _, _, ok := reg.Manifest(t, "team/gone", "1.0"); ok {
		t.Fatal("the abandoned push wrote the tag")
	}
}

// The unix socket is 0660; TCP without host is loopback; any other host
// gets a warning; a live socket is not taken over.
func TestListen(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, _, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != SocketMode {
		t.Fatalf("socket mode %v, %v; want %v", fi.Mode().Perm(), err, os.FileMode(SocketMode))
	}
	go func(l net.Listener) { _ = http.Serve(l, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) }(l) // l is reassigned below
	if _, _, err := Listen("unix://" + sock); err == nil || !strings.Contains(err.Error(), "another server answers there") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	l.Close()

	gid := os.Getgid()
	if gid == 0 {
		gid = 1 // a group other than our own (root may give it away)
	}
	if os.Geteuid() == 0 || gid == os.Getgid() {
		sock2 := filepath.Join(t.TempDir(), "g.sock")
		l, _, err := Listen("unix://"+sock2, WithSocketGroup(gid))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(sock2)
		if err != nil || int(fi.Sys().(*syscall.Stat_t).Gid) != gid {
			t.Fatalf("socket group: %+v %v, want %d", fi.Sys(), err, gid)
		}
		l.Close()
	}

	l, warning, err := Listen("tcp://:0")
	if err != nil || warning != "" || !strings.HasPrefix(l.Addr().String(), "127.0.0.1:") {
		t.Fatalf("tcp://:0 → %v %q %v", l, warning, err)
	}
	l.Close()
	l, warning, err = Listen("tcp://0.0.0.0:0")
	if err != nil || !strings.Contains(warning, "no TLS or authentication") {
		t.Fatalf("tcp://0.0.0.0:0 → %q %v", warning, err)
	}
	l.Close()
	for _, bad := range []string{"/tmp/x.sock", "http://127.0.0.1:1", "tcp://127.0.0.1", "unix://"} {
		if _, _, err := Listen(bad); err == nil {
			t.Fatalf("Listen(%q) worked", bad)
		}
	}
}

// ?referrers=1 pushes the image's referrers after it, as the CLI's
// --referrers does; without it they stay behind; a bad value is a 400.
func TestPushWithReferrers(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	f := newFixture(t, time.Second)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Index: true, Seed: 77})
	sig := img.AddReferrer(img.Target, "application/vnd.dev.cosign.artifact.sig.v1+json", "sig", []byte(`{"signed":true}`))
	f.importLayout(t, img, reg.Host+"/team/app", "1.0")
	if r := f.push(t, reg.Host+"/team/app", "1.0&referrers=maybe", nil); r.status != http.StatusBadRequest || !strings.Contains(r.err, "referrers") {
		t.Fatalf("referrers=maybe: %d %q", r.status, r.err)
	}
	if r := f.push(t, reg.Host+"/team/app", "1.0", nil); r.err != "" {
		t.Fatal(r.err)
	}
	if _, _, _, ok := reg.Manifest(t, "team/app", sig.Digest.String()); ok {
		t.Fatal("a push without referrers=1 sent the signature")
	}
	if r := f.push(t, reg.Host+"/team/app", "1.0&referrers=1", nil); r.err != "" {
		t.Fatal(r.err)
	}
	if _, _, _, ok := reg.Manifest(t, "team/app", sig.Digest.String()); !ok {
		t.Fatal("referrers=1 did not push the signature")
	}
	_, _, body, ok := reg.Manifest(t, "team/app", "sha256-"+img.Target.Digest.Encoded())
	if !ok || !strings.Contains(string(body), sig.Digest.String()) {
		t.Fatalf("the tag-schema index does not list the signature: %s", body)
	}
}

// ?referrersType= (repeatable) keeps only the image's referrers of those
// artifact types, as push --referrers-type does, and implies referrers=1;
// with referrers=0, or an artifact type that cannot be one, it is a 400.
func TestPushWithReferrersType(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	f := newFixture(t, time.Second)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Index: true, Seed: 79})
	const sigType, sbomType, vulnType = "application/vnd.dev.cosign.artifact.sig.v1+json", "application/spdx+json", "application/vnd.example.vuln+json"
	sig := img.AddReferrer(img.Target, sigType, "sig", []byte(`{"signed":true}`))
	sbom := img.AddReferrer(img.Target, sbomType, "sbom", []byte(`{"spdxVersion":"SPDX-2.3"}`))
	vuln := img.AddReferrer(img.Target, vulnType, "vuln", []byte(`{"vulnerabilities":[]}`))
	f.importLayout(t, img, reg.Host+"/team/app", "1.0")
	for _, q := range []string{"1.0&referrers=0&referrersType=" + url.QueryEscape(sbomType), "1.0&referrersType=not+a+type"} {
		if r := f.push(t, reg.Host+"/team/app", q, nil); r.status != http.StatusBadRequest || !strings.Contains(r.err, "referrersType") {
			t.Fatalf("%s: %d %q", q, r.status, r.err)
		}
	}
	if r := f.push(t, reg.Host+"/team/app", "1.0&referrersType="+url.QueryEscape(sbomType)+"&referrersType="+url.QueryEscape(vulnType), nil); r.err != "" {
		t.Fatal(r.err)
	}
	for _, c := range []struct {
		d    ocispec.Descriptor
		want bool
	}{{sig, false}, {sbom, true}, {vuln, true}} {
		if _, _, _, ok := reg.Manifest(t, "team/app", c.d.Digest.String()); ok != c.want {
			t.Fatalf("referrer %s of type %s pushed: %v, want %v", c.d.Digest, c.d.ArtifactType, ok, c.want)
		}
	}
}

// Each request's X-Registry-Auth secrets are told to OnCredentials (the
// CLI keeps them out of its log), the username with each.
func TestOnCredentialsIsToldTheRequestsSecrets(t *testing.T) {
	f := newFixture(t, time.Second)
	var told []string
	srv, err := New(Config{Service: f.svc, OnCredentials: func(user, secret string) { told = append(told, user+":"+secret) }})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"username": "pusher", "password": "s3cret-Pa55", "identitytoken": "id-T0ken"})
	r := httptest.NewRequest(http.MethodPost, "/v1.50/images/x/push", nil)
	r.Header.Set("X-Registry-Auth", base64.URLEncoding.EncodeToString(b))
	if _, _, err := srv.requestAuth(r); err != nil {
		t.Fatal(err)
	}
	if want := []string{"pusher:s3cret-Pa55", "pusher:id-T0ken"}; !slices.Equal(told, want) {
		t.Fatalf("OnCredentials told %q, want %q", told, want)
	}
}
