package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/containerdtest"
	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testenv"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

const (
	sigType  = "application/vnd.dev.cosign.artifact.sig.v1+json"
	sbomType = "application/spdx+json"
)

// signedImage is a two-platform image with a signature and an SBOM whose
// subject is its index, and a signature of the SBOM.
type signedImage struct {
	img                *testimage.Image
	sig, sbom, sbomSig ocispec.Descriptor
}

func newSignedImage(seed uint64, tagPrefix string) signedImage {
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: seed})
	s := signedImage{img: img}
	s.sig = img.AddReferrer(img.Target, sigType, tagPrefix+"sig", []byte(`{"critical":{"image":"`+img.Target.Digest.String()+`"},"by":"`+tagPrefix+`"}`))
	s.sbom = img.AddReferrer(img.Target, sbomType, tagPrefix+"sbom", []byte(`{"spdxVersion":"SPDX-2.3","name":"`+tagPrefix+`"}`))
	s.sbomSig = img.AddReferrer(s.sbom, sigType, tagPrefix+"sbom-sig", []byte(`{"critical":{"image":"`+s.sbom.Digest.String()+`"}}`))
	return s
}

// all lists the three referrers.
func (s signedImage) all() []ocispec.Descriptor {
	return []ocispec.Descriptor{s.sig, s.sbom, s.sbomSig}
}

// listedReferrers is what the registry lists as referrers of subject in
// repo: the referrers API when it has one (api true), else the tag
// schema's index.
func listedReferrers(t *testing.T, reg *registrytest.Registry, repo string, subject digest.Digest, api bool) []digest.Digest {
	t.Helper()
	var entries []ocispec.Descriptor
	if api {
		refs, ok := reg.Referrers(t, repo, subject)
		if !ok {
			t.Fatalf("registry has no referrers API")
		}
		entries = refs
	} else {
		_, mt, body, ok := reg.Manifest(t, repo, subject.Algorithm().String()+"-"+subject.Encoded())
		if !ok {
			return nil
		}
		if mt != ocispec.MediaTypeImageIndex {
			t.Fatalf("tag-schema index of %s is %s", subject, mt)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatal(err)
		}
		entries = idx.Manifests
	}
	var out []digest.Digest
	for _, e := range entries {
		out = append(out, e.Digest)
	}
	slices.Sort(out)
	return out
}

func sortedDigests(ds ...ocispec.Descriptor) []digest.Digest {
	var out []digest.Digest
	for _, d := range ds {
		out = append(out, d.Digest)
	}
	slices.Sort(out)
	return out
}

// assertReferrersPushed checks that repo holds s's image under tag and its
// referrers, listed where a client finds them.
func assertReferrersPushed(t *testing.T, reg *registrytest.Registry, repo, tag string, s signedImage, api bool) {
	t.Helper()
	assertPushed(t, reg, repo, tag, s.img.Target.Digest)
	for _, r := range s.all() {
		got, _, body, ok := reg.Manifest(t, repo, r.Digest.String())
		if !ok || got != r.Digest {
			t.Fatalf("%s lacks referrer %s", repo, r.Digest)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if _, ok := reg.Blob(t, repo, b.Digest); !ok {
				t.Fatalf("%s lacks blob %s of referrer %s", repo, b.Digest, r.Digest)
			}
		}
	}
	if got, want := listedReferrers(t, reg, repo, s.img.Target.Digest, api), sortedDigests(s.sig, s.sbom); !slices.Equal(got, want) {
		t.Fatalf("referrers of the image in %s: %v, want %v", repo, got, want)
	}
	if got, want := listedReferrers(t, reg, repo, s.sbom.Digest, api), sortedDigests(s.sbomSig); !slices.Equal(got, want) {
		t.Fatalf("referrers of the SBOM in %s: %v, want %v", repo, got, want)
	}
	if api {
		for _, tg := range reg.Tags(t, repo) {
			if strings.HasPrefix(tg, "sha256-") {
				t.Fatalf("a registry with the referrers API got tag-schema tag %s", tg)
			}
		}
	}
}

// importSigned imports s (the image named name, its referrers unnamed) as
// an OCI layout into root.
func importSigned(t *testing.T, root, name string, s signedImage) result {
	t.Helper()
	return mustCtrpush(t, root, "import", writeArchive(t, s.img, "oci-dir", name, "1.0"))
}

// sent lists the requests that changed something in the registry.
func sent(reqs []registrytest.Request) []registrytest.Request {
	var out []registrytest.Request
	for _, r := range reqs {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			out = append(out, r)
		}
	}
	return out
}

// The whole life of referrers on a registry without the referrers API
// (distribution: the tag schema) and one with it (go-containerregistry):
// import keeps them, a push without --referrers leaves them behind, with
// it sends them and makes them findable; a re-push sends nothing; a
// second repository of the same registry mounts their blobs; a pull
// --referrers into a fresh store brings them back, and that store pushes
// them on.
func TestReferrersPushPullAndMount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		api  bool
	}{{"distribution-tag-schema", false}, {"ggcr-referrers-api", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := startReferrersRegistry(t, tc.api)
			s := newSignedImage(31, "staging")
			src := t.TempDir()
			name := reg.Host + "/stage/app:1.0"
			imp := importSigned(t, src, name, s)
			if !strings.Contains(imp.stderr, "3 referrer(s) kept") {
				t.Fatalf("import did not say it kept the referrers:\n%s", imp.stderr)
			}
			if images := mustCtrpush(t, src, "images", "--long").stdout; !strings.Contains(images, " 3\n") {
				t.Fatalf("images should show 3 referrers:\n%s", images)
			}

			// Without --referrers they stay behind.
			mustCtrpush(t, src, "push", name)
			for _, r := range s.all() {
				if _, _, _, ok := reg.Manifest(t, "stage/app", r.Digest.String()); ok {
					t.Fatalf("push without --referrers sent referrer %s", r.Digest)
				}
			}

			// The dry run lists them and changes nothing.
			reg.Reset(t)
			dry := mustCtrpush(t, src, "push", "--dry-run", "--referrers", name)
			for _, r := range s.all() {
				if !strings.Contains(dry.stdout, r.Digest.Encoded()[:12]+": put") {
					t.Fatalf("dry run does not plan referrer %s:\n%s", r.Digest, dry.stdout)
				}
			}
			if w := sent(reg.Requests(t)); len(w) > 0 {
				t.Fatalf("dry run sent %+v", w)
			}

			push := mustCtrpush(t, src, "push", "--referrers", name)
			if !strings.Contains(push.stderr, "Pushing 3 referrer(s)") {
				t.Fatalf("push progress does not announce the referrers:\n%s", push.stderr)
			}
			assertReferrersPushed(t, reg, "stage/app", "1.0", s, tc.api)
			tagIndex, _, _, _ := reg.Manifest(t, "stage/app", "sha256-"+s.img.Target.Digest.Encoded())

			// Again: nothing is sent twice, the index is unchanged.
			reg.Reset(t)
			mustCtrpush(t, src, "push", "--referrers", name)
			if w := sent(reg.Requests(t)); len(w) > 0 {
				t.Fatalf("re-push sent %+v", w)
			}
			if again, _, _, _ := reg.Manifest(t, "stage/app", "sha256-"+s.img.Target.Digest.Encoded()); again != tagIndex {
				t.Fatalf("re-push changed the tag-schema index: %s, was %s", again, tagIndex)
			}

			// A second repository of the registry: referrers' blobs mount
			// where the registry mounts (distribution; go-containerregistry
			// has no mounts).
			reg.Reset(t)
			mustCtrpush(t, src, "push", "--referrers", name, reg.Host+"/prod/app:1.0")
			assertReferrersPushed(t, reg, "prod/app", "1.0", s, tc.api)
			if !tc.api {
				mounted := map[string]bool{}
				for _, r := range reg.Requests(t) {
					q, _ := url.ParseQuery(r.Query)
					if r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/") {
						t.Fatalf("push to a second repository uploaded %+v", r)
					}
					if q.Get("mount") != "" && r.Status == http.StatusCreated {
						mounted[q.Get("mount")] = true
					}
				}
				for _, r := range s.all() {
					var m ocispec.Manifest
					_ = json.Unmarshal(s.img.Blobs[r.Digest], &m)
					for _, l := range m.Layers {
						if !mounted[l.Digest.String()] {
							t.Fatalf("layer %s of referrer %s was not mounted (mounted: %v)", l.Digest, r.Digest, mounted)
						}
					}
				}
			}

			// Pull into a fresh store, then promote from there.
			dst := t.TempDir()
			pull := mustCtrpush(t, dst, "pull", "--all-platforms", "--referrers", reg.Host+"/prod/app:1.0")
			if !strings.Contains(pull.stderr, "3 referrer(s)") {
				t.Fatalf("pull --referrers:\n%s", pull.stderr)
			}
			if images := mustCtrpush(t, dst, "images", "--long").stdout; !strings.Contains(images, " 3\n") {
				t.Fatalf("images after pull --referrers should show 3 referrers:\n%s", images)
			}
			mustCtrpush(t, dst, "push", "--referrers", reg.Host+"/prod/app:1.0", reg.Host+"/final/app:1.0")
			assertReferrersPushed(t, reg, "final/app", "1.0", s, tc.api)
			orasDiscover(t, reg.Host+"/final/app@"+s.img.Target.Digest.String(), s)

			// Only the SBOMs (and their own signatures).
			only := t.TempDir()
			mustCtrpush(t, only, "pull", "--referrers-type", sbomType, reg.Host+"/prod/app:1.0")
			if images := mustCtrpush(t, only, "images", "--long").stdout; !strings.Contains(images, " 2\n") {
				t.Fatalf("images after pull --referrers-type %s should show 2 referrers:\n%s", sbomType, images)
			}
		})
	}
}

// A tag-schema index that already lists another tool's referrer keeps it
// when ctrpush adds its own.
func TestReferrersTagSchemaKeepsForeignEntries(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	name := reg.Host + "/team/app:1.0"
	foreign := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: 41})
	other := foreign.AddReferrer(foreign.Target, sigType, "someone-else", []byte(`{"by":"another tool"}`))
	fstore := t.TempDir()
	mustCtrpush(t, fstore, "import", writeArchive(t, foreign, "oci-dir", name, "1.0"))
	mustCtrpush(t, fstore, "push", "--referrers", name)
	if got := listedReferrers(t, reg, "team/app", foreign.Target.Digest, false); !slices.Equal(got, sortedDigests(other)) {
		t.Fatalf("tag-schema index %v, want %v", got, sortedDigests(other))
	}

	s := newSignedImage(41, "ours")
	if s.img.Target.Digest != foreign.Target.Digest {
		t.Fatal("the two stores should hold the same image")
	}
	src := t.TempDir()
	importSigned(t, src, name, s)
	mustCtrpush(t, src, "push", "--referrers", name)
	if got, want := listedReferrers(t, reg, "team/app", s.img.Target.Digest, false), sortedDigests(other, s.sig, s.sbom); !slices.Equal(got, want) {
		t.Fatalf("tag-schema index after our push lists %v, want %v (the foreign referrer kept)", got, want)
	}
	orasDiscover(t, reg.Host+"/team/app@"+s.img.Target.Digest.String(), s)
}

// The store keeps an image's referrers as long as the image, without an
// image record each, and removing the image frees them.
func TestReferrersLiveAndDieWithTheImage(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s := newSignedImage(51, "gc")
	importSigned(t, root, "example.com/team/app:1.0", s)
	c := countStore(t, root)
	if c.images != 1 || c.content != len(s.img.Digests()) || c.leases != 0 {
		t.Fatalf("after import: %+v, want 1 image, %d blobs, no lease", c, len(s.img.Digests()))
	}
	mustCtrpush(t, root, "rmi", "example.com/team/app:1.0")
	if c := countStore(t, root); c.images != 0 || c.content != 0 {
		t.Fatalf("after rmi: %+v, want nothing left", c)
	}
}

// orasDiscover checks that oras finds what ctrpush pushed as referrers of
// ref (an image by digest), the SBOM's signature under the SBOM.
func orasDiscover(t *testing.T, ref string, s signedImage) {
	t.Helper()
	oras := testenv.Tool(t, "CTRPUSH_ORAS", "oras discover")
	if oras == "" {
		return
	}
	out, err := exec.Command(oras, "discover", "--plain-http", "--format", "json", ref).CombinedOutput()
	if err != nil {
		t.Fatalf("oras discover %s: %v\n%s", ref, err, out)
	}
	text := string(out)
	for _, r := range s.all() {
		if !strings.Contains(text, r.Digest.String()) {
			t.Fatalf("oras discover %s does not find %s:\n%s", ref, r.Digest, out)
		}
	}
}

// On a containerd daemon too: import keeps the referrers (the daemon's
// garbage collector honours the labels), push --referrers sends them, and
// rmi frees them.
func TestDaemonReferrers(t *testing.T) {
	t.Parallel()
	d := containerdtest.Start(t)
	reg := registrytest.Start(t)
	s := newSignedImage(61, "daemon")
	name := reg.Host + "/daemon/signed:1.0"
	on := func(args ...string) result {
		r := ctrpush(t, "", append([]string{"--address", d.Address, "--namespace", "r"}, args...)...)
		if r.code != 0 {
			t.Fatalf("ctrpush %v: exit %d\n%s", args, r.code, r.stderr)
		}
		return r
	}
	on("import", writeArchive(t, s.img, "oci-tar", name, "1.0"))
	on("push", "--referrers", name)
	assertReferrersPushed(t, reg, "daemon/signed", "1.0", s, false)
	has := func(d digest.Digest, content string) bool { return strings.Contains(content, d.String()) }
	content := d.Ctr(t, "r", "content", "ls")
	for _, r := range s.all() {
		if !has(r.Digest, content) {
			t.Fatalf("the daemon lost referrer %s:\n%s", r.Digest, content)
		}
	}
	on("rmi", name)
	content = d.Ctr(t, "r", "content", "ls")
	for _, r := range append(s.all(), s.img.Target) {
		if has(r.Digest, content) {
			t.Fatalf("rmi left %s in the daemon:\n%s", r.Digest, content)
		}
	}
}

// GitLab answers a digest-like tag (sha256-<hex>) with the digest's own
// manifest: the subject itself is no referrers index, so the push creates
// one instead of refusing the tag or merging the image into it.
func TestReferrersTagAnsweredWithTheSubject(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	s := newSignedImage(71, "gitlab")
	tag := "/manifests/sha256-" + s.img.Target.Digest.Encoded()
	subject := s.img.Blobs[s.img.Target.Digest]
	rewritten := 0
	var mu sync.Mutex
	proxy.SetRewrite(func(resp *http.Response) {
		if resp.StatusCode != http.StatusNotFound || !strings.HasSuffix(resp.Request.URL.Path, tag) {
			return
		}
		mu.Lock()
		rewritten++
		mu.Unlock()
		resp.Body.Close()
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		resp.Header = http.Header{"Content-Type": {s.img.Target.MediaType}, "Docker-Content-Digest": {s.img.Target.Digest.String()},
			"Content-Length": {strconv.Itoa(len(subject))}}
		resp.ContentLength = int64(len(subject))
		resp.Body = io.NopCloser(bytes.NewReader(subject))
	})
	root := t.TempDir()
	name := proxy.Host + "/team/app:1.0"
	importSigned(t, root, name, s)
	mustCtrpush(t, root, "push", "--referrers", name)
	mu.Lock()
	n := rewritten
	mu.Unlock()
	if n == 0 {
		t.Fatal("the tag was never answered with the subject: the test tests nothing")
	}
	assertReferrersPushed(t, reg, "team/app", "1.0", s, false)
}

// Registries without the referrers API that answer it with something other
// than 404 still get the tag schema, and a pull finds the referrers there:
// Artifactory answers 406; Google Artifact Registry redirects to a login
// page, a 200 in HTML; others answer 405. Each is emulated in front of
// distribution (which answers 404).
func TestReferrersAPIAnsweredOtherThan404(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
	}{
		{"artifactory-406", http.StatusNotAcceptable, "application/json", `{"errors":[{"code":"MANIFEST_INVALID","message":"not acceptable"}]}`},
		{"gar-login-page", http.StatusOK, "text/html; charset=utf-8", "<!doctype html><title>Sign in - Google Accounts</title>"},
		{"method-not-allowed-405", http.StatusMethodNotAllowed, "text/plain", "405 method not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.Start(t)
			proxy := faultproxy.Start(t, reg.Host)
			var mu sync.Mutex
			rewritten := 0
			proxy.SetRewrite(func(resp *http.Response) {
				if !strings.Contains(resp.Request.URL.Path, "/referrers/") {
					return
				}
				mu.Lock()
				rewritten++
				mu.Unlock()
				resp.Body.Close()
				resp.StatusCode, resp.Status = tc.status, strconv.Itoa(tc.status)+" "+http.StatusText(tc.status)
				resp.Header = http.Header{"Content-Type": {tc.contentType}, "Content-Length": {strconv.Itoa(len(tc.body))}}
				resp.ContentLength = int64(len(tc.body))
				resp.Body = io.NopCloser(strings.NewReader(tc.body))
			})
			s := newSignedImage(83, tc.name)
			src := t.TempDir()
			name := proxy.Host + "/team/app:1.0"
			importSigned(t, src, name, s)
			mustCtrpush(t, src, "push", "--referrers", name)
			assertReferrersPushed(t, reg, "team/app", "1.0", s, false)

			dst := t.TempDir()
			pull := mustCtrpush(t, dst, "pull", "--all-platforms", "--referrers", name)
			if !strings.Contains(pull.stderr, "3 referrer(s)") {
				t.Fatalf("pull --referrers through %s:\n%s", tc.name, pull.stderr)
			}
			mu.Lock()
			n := rewritten
			mu.Unlock()
			if n == 0 {
				t.Fatal("the referrers API was never asked: the test tests nothing")
			}
		})
	}
}

// The referrers of one level are pushed side by side: the manifest PUTs of
// the image's signature and SBOM are held by the proxy until both are in
// flight (they would never be, one after the other), within the upload
// bound (--max-concurrent-uploads 1 keeps one write in flight), and the
// empty config they share is uploaded once.
func TestReferrersOfOneLevelPushedTogether(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	s := newSignedImage(89, "together")
	held := map[string]bool{
		"/v2/team/app/manifests/" + s.sig.Digest.String():  true,
		"/v2/team/app/manifests/" + s.sbom.Digest.String(): true,
	}
	both := make(chan struct{})
	var mu sync.Mutex
	arrived, alone := 0, 0
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method != http.MethodPut || !held[r.URL.Path] {
			return faultproxy.Fault{}
		}
		mu.Lock()
		arrived++
		if arrived == 2 {
			close(both)
		}
		mu.Unlock()
		select {
		case <-both:
		case <-time.After(30 * time.Second): // not a threshold: what ends the wait for a PUT that never comes
			mu.Lock()
			alone++
			mu.Unlock()
		case <-r.Context().Done():
		}
		return faultproxy.Fault{}
	})
	src := t.TempDir()
	name := proxy.Host + "/team/app:1.0"
	importSigned(t, src, name, s)
	mustCtrpush(t, src, "push", "--referrers", name)
	mu.Lock()
	if arrived != 2 || alone > 0 {
		t.Fatalf("the manifest PUTs of the signature and the SBOM were not in flight together (%d arrived, %d waited alone)", arrived, alone)
	}
	mu.Unlock()
	assertReferrersPushed(t, reg, "team/app", "1.0", s, false)
	var m ocispec.Manifest
	if err := json.Unmarshal(s.img.Blobs[s.sig.Digest], &m); err != nil {
		t.Fatal(err)
	}
	uploads := 0
	for _, r := range reg.Requests(t) {
		q, _ := url.ParseQuery(r.Query)
		if (r.Method == http.MethodPut || r.Method == http.MethodPost) && q.Get("digest") == m.Config.Digest.String() && r.Status == http.StatusCreated {
			uploads++
		}
	}
	if uploads != 1 {
		t.Fatalf("the referrers' shared config %s was uploaded %d times, want once", m.Config.Digest, uploads)
	}

	// One upload at a time: the referrers share the bound.
	proxy.SetRule(nil)
	reg.Reset(t)
	proxy.Track(func(r *http.Request) bool { return r.Method != http.MethodGet && r.Method != http.MethodHead })
	mustCtrpush(t, src, "push", "--referrers", "--max-concurrent-uploads", "1", name, proxy.Host+"/other/app:1.0")
	if n := proxy.MaxInFlight(); n != 1 {
		t.Fatalf("--max-concurrent-uploads 1: %d writes in flight at once", n)
	}
	assertReferrersPushed(t, reg, "other/app", "1.0", s, false)
}

// assertIndexReferrerPushed checks that repo holds index referrer idx, each
// of its child manifests with their blobs, and lists idx as a referrer of
// subject.
func assertIndexReferrerPushed(t *testing.T, reg *registrytest.Registry, repo string, subject digest.Digest, idx ocispec.Descriptor, children []ocispec.Descriptor, api bool) {
	t.Helper()
	if got, _, _, ok := reg.Manifest(t, repo, idx.Digest.String()); !ok || got != idx.Digest {
		t.Fatalf("%s lacks index referrer %s", repo, idx.Digest)
	}
	for _, c := range children {
		got, _, body, ok := reg.Manifest(t, repo, c.Digest.String())
		if !ok || got != c.Digest {
			t.Fatalf("%s lacks manifest %s of index referrer %s", repo, c.Digest, idx.Digest)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if _, ok := reg.Blob(t, repo, b.Digest); !ok {
				t.Fatalf("%s lacks blob %s of manifest %s of index referrer %s", repo, b.Digest, c.Digest, idx.Digest)
			}
		}
	}
	if got := listedReferrers(t, reg, repo, subject, api); !slices.Contains(got, idx.Digest) {
		t.Fatalf("referrers of %s in %s: %v, lacking index referrer %s", subject, repo, got, idx.Digest)
	}
}

// A referrer that is an index (a signature bundle, one signature per
// platform) travels whole: its child manifests and their blobs, and the
// referrers of those manifests (a signature of one of them), through
// import, push, pull and push again (to another registry, where nothing
// can be mounted), on a registry with the referrers API and one without.
func TestReferrersIndexTypeReferrer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		api  bool
	}{{"distribution-tag-schema", false}, {"ggcr-referrers-api", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := startReferrersRegistry(t, tc.api)
			img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: 97})
			bundle, children := img.AddIndexReferrer(img.Target, sigType, "bundle",
				[]ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}},
				[][]byte{[]byte(`{"sig":"amd64"}`), []byte(`{"sig":"arm64"}`)})
			childSig := img.AddReferrer(children[0], sigType, "child-sig", []byte(`{"sig":"of the amd64 signature"}`))
			assertAll := func(reg *registrytest.Registry, repo string, api bool) {
				t.Helper()
				assertIndexReferrerPushed(t, reg, repo, img.Target.Digest, bundle, children, api)
				if got, _, _, ok := reg.Manifest(t, repo, childSig.Digest.String()); !ok || got != childSig.Digest {
					t.Fatalf("%s lacks %s, the referrer of manifest %s of index referrer %s", repo, childSig.Digest, children[0].Digest, bundle.Digest)
				}
				if got := listedReferrers(t, reg, repo, children[0].Digest, api); !slices.Equal(got, sortedDigests(childSig)) {
					t.Fatalf("referrers of %s in %s: %v, want %s", children[0].Digest, repo, got, childSig.Digest)
				}
			}
			src := t.TempDir()
			name := reg.Host + "/stage/app:1.0"
			imp := mustCtrpush(t, src, "import", writeArchive(t, img, "oci-dir", name, "1.0"))
			if !strings.Contains(imp.stderr, "2 referrer(s) kept") {
				t.Fatalf("import did not keep the index referrer and its manifest's referrer:\n%s", imp.stderr)
			}
			mustCtrpush(t, src, "push", "--referrers", name)
			assertAll(reg, "stage/app", tc.api)

			dst := t.TempDir()
			pull := mustCtrpush(t, dst, "pull", "--all-platforms", "--referrers", name)
			if !strings.Contains(pull.stderr, "2 referrer(s)") {
				t.Fatalf("pull --referrers:\n%s", pull.stderr)
			}
			other := registrytest.Start(t)
			mustCtrpush(t, dst, "push", "--referrers", name, other.Host+"/prod/app:1.0")
			assertAll(other, "prod/app", false)
		})
	}
}

// A dry run to a repository that does not exist yet: distribution answers
// the referrers API with its router's plain 404 (no API: the tag-schema
// indexes are named as certain); go-containerregistry's registry, which
// has the API, answers NAME_UNKNOWN, which a registry without the API may
// answer too, so the plan names the indexes only as what a registry
// without the API would get.
func TestReferrersDryRunToNewRepository(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		unknown bool
	}{{"distribution-tag-schema", false}, {"ggcr-referrers-api", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := startReferrersRegistry(t, tc.unknown)
			s := newSignedImage(101, "dry")
			src := t.TempDir()
			name := reg.Host + "/brand/new:1.0"
			importSigned(t, src, name, s)
			dry := mustCtrpush(t, src, "push", "--dry-run", "--referrers", name)
			tag := "sha256-" + s.img.Target.Digest.Encoded()
			if !strings.Contains(dry.stdout, "tag-schema index to write: "+tag) {
				t.Fatalf("dry run does not name the tag-schema index %s:\n%s", tag, dry.stdout)
			}
			if got := strings.Contains(dry.stdout, "unless the registry has the referrers API"); got != tc.unknown {
				t.Fatalf("dry run says the referrers API is unknown: %v, want %v:\n%s", got, tc.unknown, dry.stdout)
			}
		})
	}
}

// startReferrersRegistry starts go-containerregistry's registry with the
// referrers API when api, else distribution (the tag schema).
func startReferrersRegistry(t *testing.T, api bool) *registrytest.Registry {
	t.Helper()
	if api {
		return registrytest.StartGGCR(t, "-referrers")
	}
	return registrytest.Start(t)
}
