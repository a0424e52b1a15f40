package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testenv"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/progress"
)

// Tests that a tag only ever names exactly what was asked for: subsets of
// an index, attestations, reductions said out loud, foreign layers, broken
// archives refused at import.

// layout writes img as an OCI layout directory naming it name (tag from
// name) and returns the directory, for tests that then break it.
func layout(t *testing.T, img *testimage.Image, name string) string {
	t.Helper()
	tag := name[strings.LastIndex(name, ":")+1:]
	dir := filepath.Join(t.TempDir(), "layout")
	if err := img.WriteOCILayout(dir, testimage.NameAnnotations(name, tag)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// sourceEntries is the index entries of img's own index.
func sourceEntries(t *testing.T, img *testimage.Image) []ocispec.Descriptor {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal(img.Blobs[img.Target.Digest], &idx); err != nil {
		t.Fatal(err)
	}
	return idx.Manifests
}

// craneValidate runs `crane validate --remote` on ref when the Makefile
// built crane ($CTRPUSH_CRANE): it checks every descriptor of the pushed
// graph against what it points to (platforms against configs included).
func craneValidate(t *testing.T, ref string) {
	t.Helper()
	crane := testenv.Tool(t, "CTRPUSH_CRANE", "crane validate")
	if crane == "" {
		return
	}
	out, err := exec.Command(crane, "validate", "--insecure", "--remote", ref).CombinedOutput()
	if err != nil {
		t.Fatalf("crane validate --remote %s: %v\n%s", ref, err, out)
	}
}

// A subset of an index keeps each kept descriptor as the source lists it
// (arm64's variant v8, Windows' os.version, annotations), in the source's
// order, with the
// attestation manifests of the kept platforms; one platform pushes its
// manifest alone and says its attestation stays behind.
func TestSubsetIndexKeepsTheSourceDescriptors(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{
		Platforms: []string{"linux/amd64", "linux/arm64", "windows/amd64", "linux/s390x"},
		PlatformDetails: []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"},
			{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2340"}, {OS: "linux", Architecture: "s390x"}},
		EntryAnnotations: map[string]string{"org.example.note": "kept as it was"},
		Attestations:     true, Seed: 40,
	})
	name := reg.Host + "/pub/app:1.0"
	mustCtrpush(t, root, "import", layout(t, img, name))

	out := mustCtrpush(t, root, "push", "--platform", "windows/amd64,linux/arm64/v8,linux/amd64", name)
	if !strings.Contains(out.stderr, "new index of linux/amd64, linux/arm64, windows/amd64") {
		t.Fatalf("no new-index notice:\n%s", out.stderr)
	}
	d, _, body, ok := reg.Manifest(t, "pub/app", "1.0")
	if !ok {
		t.Fatal("nothing pushed")
	}
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatal(err)
	}
	src := sourceEntries(t, img)
	amd, arm := img.Platform("linux/amd64").Descriptor.Digest, img.Platform("linux/arm64").Descriptor.Digest
	kept := map[string]bool{amd.String(): true, arm.String(): true, img.Platform("windows/amd64").Descriptor.Digest.String(): true}
	var want []ocispec.Descriptor
	for _, e := range src {
		if kept[e.Digest.String()] || kept[e.Annotations["vnd.docker.reference.digest"]] {
			want = append(want, e)
		}
	}
	gotJSON, _ := json.Marshal(idx.Manifests)
	wantJSON, _ := json.Marshal(want)
	if len(want) != 6 || !bytes.Equal(gotJSON, wantJSON) || !strings.Contains(string(gotJSON), `"os.version":"10.0.20348.2340"`) || !strings.Contains(string(gotJSON), `"variant":"v8"`) {
		t.Fatalf("pushed index entries\n%s\nwant the source's\n%s", gotJSON, wantJSON)
	}
	assertPushed(t, reg, "pub/app", "1.0", d)
	craneValidate(t, name)

	out = mustCtrpush(t, root, "push", "--platform", "linux/arm64", name, reg.Host+"/pub/arm:1.0")
	assertPushed(t, reg, "pub/arm", "1.0", arm)
	for _, w := range []string{"anifest pushed instead of index (linux/arm64", "attestation manifest is not pushed", "not in the store, not pushed"} {
		if w == "not in the store, not pushed" {
			if strings.Contains(out.stderr, w) {
				t.Fatalf("every platform is in the store, yet:\n%s", out.stderr)
			}
			continue
		}
		if !strings.Contains(out.stderr, w) {
			t.Fatalf("one platform: output lacks %q:\n%s", w, out.stderr)
		}
	}
	craneValidate(t, reg.Host+"/pub/arm:1.0")
}

// hostAndOther are this host's linux platform and another one.
func hostAndOther() (host, other string) {
	host = "linux/" + runtime.GOARCH
	other = "linux/arm64"
	if runtime.GOARCH == "arm64" {
		other = "linux/amd64"
	}
	return host, other
}

// Whenever what is pushed is not the image's own target, the output says
// so — which platforms were pushed and which are missing, and when this
// host's platform is not among them — and the JSON stream carries moby's
// ManifestPushedInsteadOfIndex aux.
func TestReductionIsSaid(t *testing.T) {
	t.Parallel()
	host, other := hostAndOther()
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{host, other}, Seed: 41})
	name := reg.Host + "/pub/partial:1.0"
	dir := layout(t, img, name)
	if err := os.Remove(blobPath(dir, img.Platform(other).Layers[0].Digest)); err != nil {
		t.Fatal(err)
	}
	imp := mustCtrpush(t, root, "import", dir)
	if !strings.Contains(imp.stderr, "partial image: no content for "+other) {
		t.Fatalf("import of a partial index does not say so:\n%s", imp.stderr)
	}

	out := mustCtrpush(t, root, "push", "--progress", "json", name)
	hostManifest := img.Platform(host).Descriptor
	assertPushed(t, reg, "pub/partial", "1.0", hostManifest.Digest)
	var aux struct {
		ManifestPushedInsteadOfIndex bool
		OriginalIndex                ocispec.Descriptor
		SelectedManifest             ocispec.Descriptor
	}
	said := ""
	for _, line := range strings.Split(strings.TrimSpace(out.stdout), "\n") {
		var m struct {
			Status string
			Aux    json.RawMessage
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if strings.Contains(string(m.Aux), "manifestPushedInsteadOfIndex") {
			_ = json.Unmarshal(m.Aux, &aux)
		}
		if strings.Contains(m.Status, "instead of index") {
			said = m.Status
		}
	}
	if !aux.ManifestPushedInsteadOfIndex || aux.OriginalIndex.Digest != img.Target.Digest || aux.SelectedManifest.Digest != hostManifest.Digest {
		t.Fatalf("aux %+v in\n%s", aux, out.stdout)
	}
	if !strings.Contains(said, "("+host+")") || !strings.Contains(said, "not pushed: "+other) {
		t.Fatalf("status %q does not name the platforms pushed and missing", said)
	}

	// Only the other platform present: pushed, and the output says this
	// host's platform is not among those pushed.
	img2 := testimage.MustNew(testimage.Spec{Platforms: []string{host, other}, Seed: 42})
	name2 := reg.Host + "/pub/foreign-arch:1.0"
	dir2 := layout(t, img2, name2)
	if err := os.Remove(blobPath(dir2, img2.Platform(host).Layers[0].Digest)); err != nil {
		t.Fatal(err)
	}
	mustCtrpush(t, root, "import", dir2)
	out = mustCtrpush(t, root, "push", name2)
	assertPushed(t, reg, "pub/foreign-arch", "1.0", img2.Platform(other).Descriptor.Digest)
	if !strings.Contains(out.stderr, "this host's platform ("+host+") is not among those pushed") || !strings.Contains(out.stderr, "not pushed: "+host) {
		t.Fatalf("output:\n%s", out.stderr)
	}
}

// Non-distributable (foreign) layers — a Windows base layer — are never
// uploaded and need not be in the store; a list with such a manifest is
// pushed whole; --allow-nondistributable-artifacts uploads them.
func TestForeignLayers(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, "-allow-urls", `^https://foreign\.example\.com/`)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{
		Platforms:       []string{"linux/amd64", "windows/amd64"},
		PlatformDetails: []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5458"}},
		Layers:          2, ForeignLayers: 1, Docker: true, Seed: 43,
	})
	if len(img.Foreign) != 1 {
		t.Fatalf("%d foreign layers generated", len(img.Foreign))
	}
	foreign := img.Foreign[0]
	name := reg.Host + "/pub/win:1.0"
	full := layout(t, img, name)
	without := layout(t, img, name)
	if err := os.Remove(blobPath(without, foreign.Digest)); err != nil {
		t.Fatal(err)
	}
	imp := mustCtrpush(t, root, "import", without)
	if strings.Contains(imp.stderr, "partial") {
		t.Fatalf("a missing foreign layer made the import partial:\n%s", imp.stderr)
	}
	// The windows manifest counts as present (its foreign layer is not
	// expected in the store), and nothing is missing.
	if images := mustCtrpush(t, root, "images", "--format", "{{.Platforms}} {{.Missing}}").stdout; images != "linux/amd64,windows/amd64 -\n" {
		t.Fatalf("images counts the windows manifest as incomplete: %q", images)
	}

	dry := mustCtrpush(t, root, "push", "--dry-run", name)
	if !strings.Contains(dry.stdout, "skip (foreign layer)") || !strings.Contains(dry.stdout, "1 foreign layer(s) skipped") {
		t.Fatalf("dry run:\n%s", dry.stdout)
	}
	out := mustCtrpush(t, root, "push", name)
	if !strings.Contains(out.stderr, progressID(foreign.Digest)+": Skipped foreign layer") {
		t.Fatalf("output:\n%s", out.stderr)
	}
	if d, _, _, ok := reg.Manifest(t, "pub/win", "1.0"); !ok || d != img.Target.Digest {
		t.Fatalf("pub/win:1.0 is %s, want the whole list %s", d, img.Target.Digest)
	}
	if _, ok := reg.Blob(t, "pub/win", foreign.Digest); ok {
		t.Fatal("the foreign layer was uploaded")
	}
	win := img.Platform("windows/amd64")
	if _, ok := reg.Blob(t, "pub/win", win.Layers[1].Digest); !ok {
		t.Fatal("the windows manifest's own layer is not in the registry")
	}

	// The layer in the store and the flag: uploaded.
	root2 := t.TempDir()
	mustCtrpush(t, root2, "import", full)
	mustCtrpush(t, root2, "push", "--platform", "windows/amd64", name, reg.Host+"/pub/win-plain:1.0")
	if _, ok := reg.Blob(t, "pub/win-plain", foreign.Digest); ok {
		t.Fatal("the foreign layer was uploaded without --allow-nondistributable-artifacts")
	}
	mustCtrpush(t, root2, "push", "--allow-nondistributable-artifacts", "--platform", "windows/amd64", name, reg.Host+"/pub/win-all:1.0")
	if b, ok := reg.Blob(t, "pub/win-all", foreign.Digest); !ok || digest.FromBytes(b) != foreign.Digest {
		t.Fatal("--allow-nondistributable-artifacts did not upload the foreign layer")
	}
	// Without the bytes, the flag is an error naming the layer.
	r := ctrpush(t, root, "push", "--allow-nondistributable-artifacts", "--platform", "windows/amd64", name, reg.Host+"/pub/win-fail:1.0")
	if r.code != 1 || !strings.Contains(r.stderr, foreign.Digest.String()) {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
}

func progressID(d digest.Digest) string { return d.Encoded()[:12] }

// An empty destination (an unset shell variable) is bad usage, not a push
// to the source's own name.
func TestEmptyDestinationIsUsage(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	name := reg.Host + "/pub/empty:1.0"
	importSample(t, root, name, "1.0", 44)
	r := ctrpush(t, root, "push", name, "")
	if r.code != 2 || !strings.Contains(r.stderr, "DEST") {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	if tags := reg.Tags(t, "pub/empty"); tags != nil {
		t.Fatalf("pushed anyway: %v", tags)
	}
}

// Import verifies what it stores: a layer or manifest whose bytes do not
// match its digest, a missing layer of a single-manifest image, a size that
// lies are refused, naming the blob, leaving nothing behind; re-importing a
// name says which image it replaced.
func TestImportRefusesBrokenArchives(t *testing.T) {
	t.Parallel()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, Seed: 45})
	name := "example.com/pub/broken:1.0"
	m := img.Platform("linux/amd64")
	layer := m.Layers[1]
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   string
	}{
		{"a layer's bytes do not match its digest", func(t *testing.T, dir string) {
			b := bytes.Repeat([]byte{'x'}, int(layer.Size))
			if err := os.WriteFile(blobPath(dir, layer.Digest), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, layer.Digest.String() + " does not match its digest"},
		{"a layer is missing", func(t *testing.T, dir string) {
			if err := os.Remove(blobPath(dir, layer.Digest)); err != nil {
				t.Fatal(err)
			}
		}, layer.Digest.String() + " is missing from the archive"},
		{"the manifest does not match its digest", func(t *testing.T, dir string) {
			b := append(append([]byte{}, img.Blobs[img.Target.Digest]...), ' ')
			if err := os.WriteFile(blobPath(dir, img.Target.Digest), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, img.Target.Digest.String() + " does not match its digest"},
		{"index.json lies about the size", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "index.json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			size := fmt.Sprintf(`"size":%d`, img.Target.Size)
			if !bytes.Contains(b, []byte(size)) {
				t.Fatalf("index.json %s has no %s", b, size)
			}
			b = bytes.Replace(b, []byte(size), []byte(fmt.Sprintf(`"size":%d`, img.Target.Size+7)), 1)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, fmt.Sprintf("%s has %d bytes, not the %d", img.Target.Digest, img.Target.Size, img.Target.Size+7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := layout(t, img, name)
			tc.break_(t, dir)
			r := ctrpush(t, root, "import", dir)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, name) {
				t.Fatalf("exit %d, want 1 and %q:\n%s", r.code, tc.want, r.stderr)
			}
			if c := countStore(t, root); c.images != 0 || c.content != 0 || c.leases != 0 {
				t.Fatalf("the refused import left %+v", c)
			}
		})
	}

	// The good archive imports; another image under the same name says
	// which one it replaced.
	root := t.TempDir()
	mustCtrpush(t, root, "import", layout(t, img, name))
	other := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 46})
	r := mustCtrpush(t, root, "import", layout(t, other, name))
	if !strings.Contains(r.stderr, name+": was "+img.Target.Digest.String()) {
		t.Fatalf("re-import:\n%s", r.stderr)
	}
}

// Registries on one host and different ports: the labels name the host
// without the port (as containerd writes them), so a push to the second
// tries mounts from repositories that exist only on the first. It falls
// back to uploads quietly (no "Failed" in a push that succeeds), the dry
// run predicts the bytes it then uploads, and content that only a mount
// could have supplied is never pushed as if it had been: the push says it
// pushed the host's manifest instead.
func TestOtherPortMountsFallBackQuietly(t *testing.T) {
	t.Parallel()
	host, other := hostAndOther()
	a, b := registrytest.Start(t), registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{host, other}, Layers: 2, Seed: 47})
	nameA := a.Host + "/team/app:1.0"
	mustCtrpush(t, root, "import", layout(t, img, nameA))
	mustCtrpush(t, root, "push", nameA)

	b.Reset(t)
	dry := mustCtrpush(t, root, "push", "--dry-run", nameA, b.Host+"/other/app:1.0")
	var total int64
	counted := map[digest.Digest]bool{}
	for _, m := range img.Manifests {
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if !counted[d.Digest] {
				counted[d.Digest] = true
				total += d.Size
			}
		}
	}
	b.Reset(t)
	out := mustCtrpush(t, root, "push", nameA, b.Host+"/other/app:1.0")
	assertPushed(t, b, "other/app", "1.0", img.Target.Digest)
	if strings.Contains(out.stderr, "Failed") {
		t.Fatalf("a push whose mounts fell back to uploads printed Failed:\n%s", out.stderr)
	}
	var mounts int
	var uploaded int64
	for _, r := range b.Requests(t) {
		if r.Method == http.MethodPost && strings.Contains(r.Query, "mount=") {
			mounts++
		}
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/") {
			uploaded += r.BodyBytes
		}
	}
	if mounts == 0 {
		t.Fatal("no mount was tried: the test tested nothing")
	}
	if uploaded != total || !strings.Contains(dry.stdout, fmt.Sprintf("to upload (%s)", progress.HumanSize(total))) {
		t.Fatalf("uploaded %d bytes of %d; dry run said:\n%s", uploaded, total, dry.stdout)
	}

	// A store that pulled only this host's platform from the first
	// registry: the other platform's layers are labelled, not local.
	// The dry run says so too, and predicts the bytes the push sends.
	pulled := t.TempDir()
	mustCtrpush(t, pulled, "pull", "--platform", host, nameA)
	var hostBytes int64
	for _, d := range append([]ocispec.Descriptor{img.Platform(host).Config}, img.Platform(host).Layers...) {
		hostBytes += d.Size
	}
	dry = mustCtrpush(t, pulled, "push", "--dry-run", nameA, b.Host+"/other/two:1.0")
	if !strings.Contains(dry.stdout, "manifest pushed instead of index ("+host+")") || !strings.Contains(dry.stdout, fmt.Sprintf("to upload (%s)", progress.HumanSize(hostBytes))) {
		t.Fatalf("dry run of the pulled store:\n%s", dry.stdout)
	}
	b.Reset(t)
	out = mustCtrpush(t, pulled, "push", nameA, b.Host+"/other/two:1.0")
	assertPushed(t, b, "other/two", "1.0", img.Platform(host).Descriptor.Digest)
	if !strings.Contains(out.stderr, "is missing locally") || !strings.Contains(out.stderr, "manifest pushed instead of index ("+host+")") {
		t.Fatalf("the fallback is not said:\n%s", out.stderr)
	}
	if strings.Contains(out.stderr, "Failed") {
		t.Fatalf("a push that fell back and succeeded printed Failed:\n%s", out.stderr)
	}
	uploaded = 0
	for _, r := range b.Requests(t) {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/") {
			uploaded += r.BodyBytes
		}
	}
	if uploaded != hostBytes {
		t.Fatalf("the push uploaded %d bytes, the dry run predicted %d", uploaded, hostBytes)
	}
}

// The docker CLI pushing through `ctrpush serve` shows the reduction
// notice too (it prints the stream's status lines).
func TestDockerCLIShowsTheReduction(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	host, other := hostAndOther()
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{host, other}, Seed: 48})
	name := reg.Host + "/pub/served:1.0"
	dir := layout(t, img, name)
	if err := os.Remove(blobPath(dir, img.Platform(other).Layers[0].Digest)); err != nil {
		t.Fatal(err)
	}
	mustCtrpush(t, root, "import", dir)
	s := startServe(t, "--root", root)
	r := s.docker(t, docker, t.TempDir(), "", "push", name)
	if r.code != 0 {
		t.Fatalf("docker push: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "anifest pushed instead of index ("+host+")") || !strings.Contains(r.stdout, "not pushed: "+other) {
		t.Fatalf("docker push output lacks the reduction:\n%s", r.stdout)
	}
	assertPushed(t, reg, "pub/served", "1.0", img.Platform(host).Descriptor.Digest)
}

// `ctrpush import -` reads the archive from standard input, as `docker
// load` does, gzipped or not.
func TestImportFromStdin(t *testing.T) {
	t.Parallel()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: 49})
	name := "example.com/pub/stdin:1.0"
	var tarball bytes.Buffer
	if err := img.WriteOCITar(&tarball, testimage.NameAnnotations(name, "1.0")); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(tarball.Bytes())
	_ = zw.Close()
	for _, in := range [][]byte{tarball.Bytes(), gz.Bytes()} {
		root := t.TempDir()
		cmd := exec.Command(ctrpushBin, "--root", root, "import", "-")
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("import -: %v", err)
		}
		if got := parseImport(t, string(out)); got[name] != img.Target.Digest {
			t.Fatalf("import - printed %q", out)
		}
	}
}

// Several ctrpush processes on one store at once (CI jobs sharing a
// runner's store): three pushes and an import run side by side, each
// through a slowed registry link so they overlap, and all succeed with the
// right digests.
func TestParallelProcessesOnOneStore(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	root := t.TempDir()
	var imgs []*testimage.Image
	for i := 0; i < 3; i++ {
		img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 256 << 10, Seed: uint64(80 + i)})
		mustCtrpush(t, root, "import", layout(t, img, fmt.Sprintf("%s/par/app%d:1.0", proxy.Host, i)))
		imgs = append(imgs, img)
	}
	late := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, LayerSize: 1 << 20, Seed: 84})
	lateArchive := layout(t, late, "example.com/par/late:1.0")
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPut {
			return faultproxy.Fault{Delay: 100 * time.Millisecond}
		}
		return faultproxy.Fault{}
	})

	type run struct {
		args []string
		r    result
	}
	var runs []*run
	for i := range imgs {
		runs = append(runs, &run{args: []string{"push", fmt.Sprintf("%s/par/app%d:1.0", proxy.Host, i)}})
	}
	runs = append(runs, &run{args: []string{"import", lateArchive}})
	var wg sync.WaitGroup
	start := time.Now()
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.r = ctrpush(t, root, r.args...)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for _, r := range runs {
		if r.r.code != 0 {
			t.Fatalf("ctrpush %s beside the others: exit %d\n%s", strings.Join(r.args, " "), r.r.code, r.r.stderr)
		}
	}
	for i, img := range imgs {
		assertPushed(t, reg, fmt.Sprintf("par/app%d", i), "1.0", img.Target.Digest)
	}
	if got := parseImport(t, runs[3].r.stdout); got["example.com/par/late:1.0"] != late.Target.Digest {
		t.Fatalf("import beside the pushes printed %q", runs[3].r.stdout)
	}
	// They ran at once: together in well under the sum of their times.
	var sum time.Duration
	for _, r := range runs {
		sum += r.r.elapsed
	}
	t.Logf("4 processes together: %s (sum of their times %s)", took, sum)
	if took > sum*3/4 {
		t.Fatalf("the processes did not overlap: %s together, %s summed", took, sum)
	}
	if c := countStore(t, root); c.leases != 0 || c.images != 4 {
		t.Fatalf("store after the parallel runs: %+v", c)
	}
}
