package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// writeArchive writes img in format ("oci-dir", "oci-tar", "docker") under
// dir, naming it name, and returns its path.
func writeArchive(t *testing.T, img *testimage.Image, format, name, tag string) string {
	t.Helper()
	dir := t.TempDir()
	switch format {
	case "oci-dir":
		p := filepath.Join(dir, "layout")
		if err := img.WriteOCILayout(p, testimage.NameAnnotations(name, tag)); err != nil {
			t.Fatal(err)
		}
		return p
	case "oci-tar":
		var b bytes.Buffer
		if err := img.WriteOCITar(&b, testimage.NameAnnotations(name, tag)); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "image.tar")
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	case "docker":
		var b bytes.Buffer
		if err := img.WriteDockerSave(&b, platformsOf(img)[0], name); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "docker.tar")
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Fatalf("unknown format %s", format)
	return ""
}

func platformsOf(img *testimage.Image) []string {
	var out []string
	for _, m := range img.Manifests {
		p := m.Platform.OS + "/" + m.Platform.Architecture
		if m.Platform.Variant != "" {
			p += "/" + m.Platform.Variant
		}
		out = append(out, p)
	}
	return out
}

// parseImport reads "NAME DIGEST" lines.
func parseImport(t *testing.T, out string) map[string]digest.Digest {
	t.Helper()
	m := map[string]digest.Digest{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("import printed %q, want NAME DIGEST lines", line)
		}
		m[f[0]] = digest.Digest(f[1])
	}
	return m
}

// assertPushed checks that repo:tag is d in the registry and that every
// manifest and blob below it is there with the right bytes; it returns the
// media types seen, by digest.
func assertPushed(t *testing.T, reg *registrytest.Registry, repo, tag string, d digest.Digest) map[digest.Digest]string {
	t.Helper()
	seen := map[digest.Digest]string{}
	var walk func(ref string, want digest.Digest)
	walk = func(ref string, want digest.Digest) {
		got, mt, body, ok := reg.Manifest(t, repo, ref)
		if !ok {
			t.Fatalf("registry has no %s:%s", repo, ref)
		}
		if got != want {
			t.Fatalf("registry %s:%s is %s, want %s", repo, ref, got, want)
		}
		seen[got] = mt
		var m struct {
			MediaType string               `json:"mediaType"`
			Manifests []ocispec.Descriptor `json:"manifests"`
			Config    ocispec.Descriptor   `json:"config"`
			Layers    []ocispec.Descriptor `json:"layers"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		if m.MediaType != mt {
			t.Fatalf("%s served as %q, body says %q", got, mt, m.MediaType)
		}
		for _, c := range m.Manifests {
			walk(c.Digest.String(), c.Digest)
		}
		for _, b := range append(m.Layers, m.Config) {
			if b.Digest == "" {
				continue
			}
			data, ok := reg.Blob(t, repo, b.Digest)
			if !ok || digest.FromBytes(data) != b.Digest {
				t.Fatalf("registry %s: blob %s missing or corrupt", repo, b.Digest)
			}
			seen[b.Digest] = b.MediaType
		}
	}
	walk(tag, d)
	return seen
}

func TestImportAndPushEachFormat(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	for _, format := range []string{"oci-dir", "oci-tar", "docker"} {
		t.Run(format, func(t *testing.T) {
			root := t.TempDir()
			plats := []string{"linux/amd64", "linux/arm64"}
			if format == "docker" {
				plats = plats[:1] // docker save holds one platform
			}
			img := testimage.MustNew(testimage.Spec{Platforms: plats, Layers: 2, Seed: 3})
			name := reg.Host + "/formats/" + strings.ReplaceAll(format, "-", "") + ":1.0"
			archive := writeArchive(t, img, format, name, "1.0")

			out := mustCtrpush(t, root, "import", archive)
			imported := parseImport(t, out.stdout)
			d, ok := imported[name]
			if !ok {
				t.Fatalf("import did not name %s: %q", name, out.stdout)
			}
			if format != "docker" && d != img.Target.Digest {
				t.Fatalf("imported %s as %s, want %s", name, d, img.Target.Digest)
			}
			// Re-importing changes nothing.
			before := countStore(t, root)
			again := mustCtrpush(t, root, "import", archive)
			if again.stdout != out.stdout {
				t.Fatalf("re-import printed %q, first %q", again.stdout, out.stdout)
			}
			if after := countStore(t, root); after != before {
				t.Fatalf("re-import changed the store: %+v → %+v", before, after)
			}

			push := mustCtrpush(t, root, "push", name)
			wantLine := "1.0: digest: " + d.String() + " size: "
			if !strings.HasPrefix(push.stdout, wantLine) {
				t.Fatalf("push stdout %q, want %q…", push.stdout, wantLine)
			}
			if !strings.HasPrefix(push.stderr, "The push refers to repository ["+strings.TrimSuffix(name, ":1.0")+"]\n") {
				t.Fatalf("push stderr starts %q", push.stderr)
			}
			repo := strings.TrimPrefix(strings.TrimSuffix(name, ":1.0"), reg.Host+"/")
			seen := assertPushed(t, reg, repo, "1.0", d)
			if format == "docker" {
				if seen[d] != images.MediaTypeDockerSchema2Manifest {
					t.Fatalf("docker archive pushed as %s", seen[d])
				}
				return
			}
			// OCI: byte-identical, so media types unchanged.
			for dg, b := range img.Blobs {
				if _, ok := seen[dg]; !ok {
					t.Fatalf("blob %s of the image is not reachable in the registry", dg)
				}
				got, ok := reg.Blob(t, repo, dg)
				if images.IsManifestType(seen[dg]) || images.IsIndexType(seen[dg]) {
					_, _, got, ok = reg.Manifest(t, repo, dg.String())
				}
				if !ok || !bytes.Equal(got, b) {
					t.Fatalf("%s %s differs in the registry", seen[dg], dg)
				}
			}
			if seen[img.Target.Digest] != ocispec.MediaTypeImageIndex {
				t.Fatalf("index pushed as %s", seen[img.Target.Digest])
			}
			if after := countStore(t, root); after.leases != 0 {
				t.Fatalf("push left %d lease(s)", after.leases)
			}
		})
	}
}

// importSample imports a 2-platform image named name into root.
func importSample(t *testing.T, root, name, tag string, seed uint64) *testimage.Image {
	t.Helper()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: seed})
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, tag))
	return img
}

func TestPushPlatformPutsThatManifestUnderTag(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	name := reg.Host + "/team/app:1.0"
	img := importSample(t, root, name, "1.0", 1)
	arm := img.Platform("linux/arm64").Descriptor
	out := mustCtrpush(t, root, "push", "--platform", "linux/arm64", name)
	if !strings.HasPrefix(out.stdout, "1.0: digest: "+arm.Digest.String()) {
		t.Fatalf("stdout %q", out.stdout)
	}
	seen := assertPushed(t, reg, "team/app", "1.0", arm.Digest)
	if seen[arm.Digest] != ocispec.MediaTypeImageManifest {
		t.Fatalf("manifest pushed as %s", seen[arm.Digest])
	}
	for _, l := range img.Platform("linux/amd64").Layers {
		if _, ok := reg.Blob(t, "team/app", l.Digest); ok {
			t.Fatalf("amd64 layer %s pushed with --platform linux/arm64", l.Digest)
		}
	}

	// Every platform of the image: its own index, unchanged.
	out = mustCtrpush(t, root, "push", "--platform", "linux/arm64,linux/amd64", name, reg.Host+"/team/all:1.0")
	if strings.Contains(out.stderr, "new index") {
		t.Fatalf("asking for every platform made a new index: %q", out.stderr)
	}
	assertPushed(t, reg, "team/all", "1.0", img.Target.Digest)

	// Some of the platforms: a new index in the source's order, said so.
	three := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/s390x", "linux/arm64"}, Seed: 31})
	mustCtrpush(t, root, "import", writeArchive(t, three, "oci-tar", reg.Host+"/team/three:1.0", "1.0"))
	out = mustCtrpush(t, root, "push", "--platform", "linux/arm64,linux/amd64", reg.Host+"/team/three:1.0", reg.Host+"/team/both:1.0")
	if !strings.Contains(out.stderr, "new index") {
		t.Fatalf("output does not say a new index was made: %q", out.stderr)
	}
	d, _, body, ok := reg.Manifest(t, "team/both", "1.0")
	if !ok || d == three.Target.Digest {
		t.Fatalf("team/both:1.0 is %s (the original index is %s)", d, three.Target.Digest)
	}
	var idx ocispec.Index
	_ = json.Unmarshal(body, &idx)
	if len(idx.Manifests) != 2 || idx.Manifests[0].Digest != three.Platform("linux/amd64").Descriptor.Digest ||
		idx.Manifests[1].Digest != three.Platform("linux/arm64").Descriptor.Digest {
		t.Fatalf("new index %+v", idx.Manifests)
	}
	assertPushed(t, reg, "team/both", "1.0", d)
}

// Asking for every platform of an index (its attestations come with them)
// pushes the image's own index, byte for byte, even when Go would
// serialize it otherwise: a digest pinned or signed on it still holds.
func TestPushEveryPlatformAskedPushesTheIndexBytes(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{
		Platforms:       []string{"linux/amd64", "linux/arm64"},
		PlatformDetails: []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}},
		Attestations:    true, OtherIndexBytes: true, Seed: 221,
	})
	var idx ocispec.Index
	if err := json.Unmarshal(img.Blobs[img.Target.Digest], &idx); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(idx); digest.FromBytes(again) == img.Target.Digest {
		t.Fatal("the test index serializes as Go writes it: the test would prove nothing")
	}
	name := reg.Host + "/team/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))

	out := mustCtrpush(t, root, "push", "--platform", "linux/amd64,linux/arm64/v8", name)
	if strings.Contains(out.stderr, "new index") || !strings.HasPrefix(out.stdout, "1.0: digest: "+img.Target.Digest.String()) {
		t.Fatalf("asking for every platform did not push the image's own index:\nstdout %q\nstderr %q", out.stdout, out.stderr)
	}
	assertPushed(t, reg, "team/app", "1.0", img.Target.Digest)
	if _, _, body, _ := reg.Manifest(t, "team/app", "1.0"); !bytes.Equal(body, img.Blobs[img.Target.Digest]) {
		t.Fatalf("the registry holds other bytes than the image's index:\n%s", body)
	}
	craneValidate(t, name)
}

func TestPushUntaggedSourceDestAndRepush(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	one := importSample(t, root, reg.Host+"/team/app:1.0", "1.0", 1)
	two := importSample(t, root, reg.Host+"/team/app:2.0", "2.0", 2)
	importSample(t, root, reg.Host+"/team/other:9", "9", 3)

	// A repository without tag means its latest tag, as docker push: there
	// is none here, and the error names the tags there are and -a.
	r := ctrpush(t, root, "push", reg.Host+"/team/app", reg.Host+"/mirror/app")
	if r.code != 1 || !strings.Contains(r.stderr, "image "+reg.Host+"/team/app:latest not found") || !strings.Contains(r.stderr, "the store has 1.0, 2.0: name one ("+reg.Host+"/team/app:1.0), or push them all with --all-tags") {
		t.Fatalf("untagged source without latest: %+v", r)
	}
	if len(reg.Requests(t)) != 0 {
		t.Fatalf("a push of a missing latest sent requests: %+v", reg.Requests(t))
	}
	// -a with a tag is bad usage.
	if r := ctrpush(t, root, "push", "-a", reg.Host+"/team/app:1.0"); r.code != 2 || !strings.Contains(r.stderr, "--all-tags pushes every local tag of a repository: give SOURCE without tag or digest") {
		t.Fatalf("-a with a tagged source: %+v", r)
	}

	// SOURCE DEST, untagged, --all-tags: every tag, to the destination repository.
	out := mustCtrpush(t, root, "push", "--all-tags", reg.Host+"/team/app", reg.Host+"/mirror/app")
	for _, want := range []string{"1.0: digest: " + one.Target.Digest.String(), "2.0: digest: " + two.Target.Digest.String()} {
		if !strings.Contains(out.stdout, want) {
			t.Fatalf("stdout %q lacks %q", out.stdout, want)
		}
	}
	assertPushed(t, reg, "mirror/app", "1.0", one.Target.Digest)
	assertPushed(t, reg, "mirror/app", "2.0", two.Target.Digest)
	if reg.Tags(t, "team/other") != nil || reg.Tags(t, "team/app") != nil {
		t.Fatal("pushed repositories other than the destination")
	}
	// no retagging: the store still has just the three imported images
	images := mustCtrpush(t, root, "images").stdout
	if strings.Contains(images, "mirror") || countStore(t, root).images != 3 {
		t.Fatalf("push changed the local images:\n%s", images)
	}

	// Re-push: same result, no blob uploaded.
	reg.Reset(t)
	again := mustCtrpush(t, root, "push", reg.Host+"/team/app:1.0", reg.Host+"/mirror/app:1.0")
	if !strings.HasPrefix(again.stdout, "1.0: digest: "+one.Target.Digest.String()) {
		t.Fatalf("re-push stdout %q", again.stdout)
	}
	for _, r := range reg.Requests(t) {
		if r.Method == "POST" || r.BodyBytes > 0 && strings.Contains(r.Path, "/blobs/") {
			t.Fatalf("re-push uploaded: %+v", r)
		}
	}
	if !strings.Contains(again.stderr, "Layer already exists") {
		t.Fatalf("re-push progress does not say the layers exist:\n%s", again.stderr)
	}

	// Quiet: only the reference pushed, as docker push -q.
	q := mustCtrpush(t, root, "push", "-q", reg.Host+"/team/app:2.0", reg.Host+"/mirror/app:2.0")
	if q.stdout != reg.Host+"/mirror/app:2.0\n" || q.stderr != "" {
		t.Fatalf("quiet push printed stdout %q stderr %q", q.stdout, q.stderr)
	}

	// With a latest tag, the repository alone pushes that tag only.
	mustCtrpush(t, root, "tag", reg.Host+"/team/app:2.0", reg.Host+"/team/app")
	latest := mustCtrpush(t, root, "push", reg.Host+"/team/app", reg.Host+"/only/app")
	if !strings.HasPrefix(latest.stdout, "latest: digest: "+two.Target.Digest.String()) {
		t.Fatalf("push of the repository: %+v", latest)
	}
	if tags := reg.Tags(t, "only/app"); !slices.Equal(tags, []string{"latest"}) {
		t.Fatalf("the repository alone pushed tags %v, want [latest]", tags)
	}
}
