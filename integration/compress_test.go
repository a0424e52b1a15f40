package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/containerdtest"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testenv"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// Tests of push --compression through the CLI (issue 25), checked by
// parties other than ctrpush: the registries' own bytes (each layer
// decompressed against the config's diff_ids), crane (manifest, validate:
// in full for gzip, whose layers it can read, --fast otherwise), skopeo,
// and a containerd daemon that pulls and unpacks the result.

// compressionOf is the format a layer media type names: "" for a plain
// tar, "gzip", "zstd"; "?" for what is not a layer type.
func compressionOf(mediaType string) string {
	switch mediaType {
	case ocispec.MediaTypeImageLayer, images.MediaTypeDockerSchema2Layer:
		return ""
	case ocispec.MediaTypeImageLayerGzip, images.MediaTypeDockerSchema2LayerGzip:
		return "gzip"
	case ocispec.MediaTypeImageLayerZstd, images.MediaTypeDockerSchema2LayerZstd:
		return "zstd"
	}
	return "?"
}

// servedManifest is the manifest reg serves for repo:ref, fetched by the
// registry helper (which also gives its Content-Type) and, when the
// Makefile built it, by `crane manifest`, which must serve the same bytes.
func servedManifest(t *testing.T, reg *registrytest.Registry, repo, ref string) (digest.Digest, string, ocispec.Manifest) {
	t.Helper()
	d, mt, body, ok := reg.Manifest(t, repo, ref)
	if !ok {
		t.Fatalf("%s has no %s:%s", reg.Host, repo, ref)
	}
	if crane := testenv.Tool(t, "CTRPUSH_CRANE", "crane manifest"); crane != "" {
		out, err := exec.Command(crane, "manifest", "--insecure", reg.Host+"/"+repo+":"+ref).Output()
		if err != nil {
			t.Fatalf("crane manifest %s/%s:%s: %v", reg.Host, repo, ref, err)
		}
		if !bytes.Equal(out, body) {
			t.Fatalf("crane manifest %s/%s:%s gives other bytes than the registry serves:\n%s\n%s", reg.Host, repo, ref, out, body)
		}
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != mt {
		t.Fatalf("%s/%s:%s served as %q, its body says %q", reg.Host, repo, ref, mt, m.MediaType)
	}
	return d, mt, m
}

// assertLayersIn checks, from the registry's own bytes, that every layer
// of m is format by its media type and by its bytes (the magic number),
// and decompresses to the tar its config's diff_id names.
func assertLayersIn(t *testing.T, reg *registrytest.Registry, repo string, m ocispec.Manifest, format string) {
	t.Helper()
	cb, ok := reg.Blob(t, repo, m.Config.Digest)
	if !ok {
		t.Fatalf("%s/%s lacks config %s", reg.Host, repo, m.Config.Digest)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) || len(m.Layers) == 0 {
		t.Fatalf("%d layers, %d diff_ids", len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	wantMagic := map[string]compression.Compression{"": compression.Uncompressed, "gzip": compression.Gzip, "zstd": compression.Zstd}[format]
	for i, l := range m.Layers {
		if got := compressionOf(l.MediaType); got != format {
			t.Fatalf("%s/%s: layer %d is %s, want %s", reg.Host, repo, i, l.MediaType, format)
		}
		b, ok := reg.Blob(t, repo, l.Digest)
		if !ok || digest.FromBytes(b) != l.Digest || int64(len(b)) != l.Size {
			t.Fatalf("%s/%s: layer %s missing, or other bytes or size", reg.Host, repo, l.Digest)
		}
		if got := compression.DetectCompression(b); got != wantMagic {
			t.Fatalf("%s/%s: layer %s bytes are %s, want %s", reg.Host, repo, l.Digest, got.Extension(), format)
		}
		r, err := compression.DecompressStream(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		tarBytes, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("layer %s does not decompress: %v", l.Digest, err)
		}
		if got := digest.FromBytes(tarBytes); got != cfg.RootFS.DiffIDs[i] {
			t.Fatalf("%s/%s: layer %d decompresses to %s, the config's diff_id is %s", reg.Host, repo, i, got, cfg.RootFS.DiffIDs[i])
		}
	}
}

// craneValidateFast runs `crane validate --remote --fast` on ref: the
// manifest, its config and every layer's presence, but not the layers'
// content. crane (go-containerregistry v0.22's validate) reads every layer
// through gzip, so a zstd or plain tar layer fails the full check with
// "gzip: invalid header" whatever its bytes; assertLayersIn checks those
// against the diff_ids instead.
func craneValidateFast(t *testing.T, ref string) {
	t.Helper()
	crane := testenv.Tool(t, "CTRPUSH_CRANE", "crane validate")
	if crane == "" {
		return
	}
	out, err := exec.Command(crane, "validate", "--insecure", "--remote", ref, "--fast").CombinedOutput()
	if err != nil {
		t.Fatalf("crane validate --remote --fast %s: %v\n%s", ref, err, out)
	}
}

// skopeoCheck has skopeo (containers/image, another implementation of
// the distribution API and of zstd layers) read ref: `skopeo inspect`
// lists exactly want's layer digests (and, on a skopeo new enough to print
// LayersData, their media types), and `skopeo copy` to an OCI layout
// fetches every blob, checking its digest, and writes the manifest with
// want's layers, media types included. A machine without skopeo skips
// only this check (the test calling it in a subtest).
func skopeoCheck(t *testing.T, ref string, want []ocispec.Descriptor) {
	t.Helper()
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		testenv.Missing(t, "skopeo is not installed (apt-get install skopeo): %v", err)
	}
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(skopeo, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out
	}
	out := run("inspect", "--tls-verify=false", "docker://"+ref)
	var info struct {
		Layers     []digest.Digest
		LayersData []struct {
			MIMEType string
			Digest   digest.Digest
		}
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("skopeo inspect printed %s: %v", out, err)
	}
	if len(info.Layers) != len(want) {
		t.Fatalf("skopeo inspect lists %d layers, want %d:\n%s", len(info.Layers), len(want), out)
	}
	for i, l := range want {
		if info.Layers[i] != l.Digest {
			t.Fatalf("skopeo inspect lists layer %d as %s, want %s", i, info.Layers[i], l.Digest)
		}
	}
	if info.LayersData != nil { // skopeo ≥ 1.10; Debian 12's 1.9 has none
		for i, l := range want {
			if i >= len(info.LayersData) || info.LayersData[i].Digest != l.Digest || info.LayersData[i].MIMEType != l.MediaType {
				t.Fatalf("skopeo inspect's LayersData\n%s\nwant %s layers %+v", out, l.MediaType, want)
			}
		}
	}

	dir := t.TempDir()
	run("copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+":copied")
	var idx ocispec.Index
	if b, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile)); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("skopeo copy wrote index.json %s (%v)", b, err)
	}
	b, err := os.ReadFile(blobPath(dir, idx.Manifests[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != len(want) {
		t.Fatalf("skopeo copied a manifest of %d layers, want %d", len(m.Layers), len(want))
	}
	for i, l := range want {
		if m.Layers[i].Digest != l.Digest || m.Layers[i].MediaType != l.MediaType {
			t.Fatalf("skopeo copied layer %d as %s %s, want %s %s", i, m.Layers[i].MediaType, m.Layers[i].Digest, l.MediaType, l.Digest)
		}
		if _, err := os.Stat(blobPath(dir, l.Digest)); err != nil {
			t.Fatalf("skopeo did not copy layer %s: %v", l.Digest, err)
		}
	}
}

// importedDigest imports archive into root and returns the digest the
// import gives name.
func importedDigest(t *testing.T, root, archive, name string) digest.Digest {
	t.Helper()
	out := mustCtrpush(t, root, "import", archive)
	d, ok := parseImport(t, out.stdout)[name]
	if !ok {
		t.Fatalf("import did not name %s: %q", name, out.stdout)
	}
	return d
}

var compressedLine = regexp.MustCompile(`Compressed with (\w+) \(level (\d+)\): (\d+) layer\(s\) converted now, (\d+) from an earlier push; pushing (sha256:[0-9a-f]{64}) \(the local image (\S+) is (sha256:[0-9a-f]{64})\)`)

// compressedSummary finds the one summary line of a compressing push.
func compressedSummary(t *testing.T, stderr string) (format, level string, now, earlier int, pushed, local digest.Digest) {
	t.Helper()
	all := compressedLine.FindAllStringSubmatch(stderr, -1)
	if len(all) != 1 {
		t.Fatalf("want one \"Compressed with …\" line, found %d:\n%s", len(all), stderr)
	}
	m := all[0]
	fmt.Sscan(m[3], &now)
	fmt.Sscan(m[4], &earlier)
	return m[1], m[2], now, earlier, digest.Digest(m[5]), digest.Digest(m[7])
}

// A `docker save` archive (plain tar layers, a Docker manifest) is
// imported and pushed with zstd to distribution v3, Debian's 2.8 and
// go-containerregistry in one run: each serves an OCI manifest of zstd
// layers (by media type and by their bytes) that decompress to the
// config's diff_ids; crane validates the rest of it, and skopeo inspects
// and copies it.
// A second push of the same image to another repository of v3 compresses
// nothing and mounts every layer: no layer is uploaded again.
func TestImportDockerSaveThenPushZstd(t *testing.T) {
	t.Parallel()
	v3 := registrytest.Start(t)
	deb := registrytest.StartDebian(t)
	ggcr := registrytest.StartGGCR(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, LayerSize: 128 << 10, Uncompressed: true, Docker: true, Seed: 2501})
	for _, l := range img.Manifests[0].Layers {
		if l.MediaType != images.MediaTypeDockerSchema2Layer {
			t.Fatalf("the test image's layer is %s, want a plain tar: the test would prove nothing", l.MediaType)
		}
	}
	src := "saved.example/team/app:1.0"
	local := importedDigest(t, root, writeArchive(t, img, "docker", src, "1.0"), src)

	regs := []*registrytest.Registry{v3, deb, ggcr}
	regNames := map[*registrytest.Registry]string{v3: "distribution v3", deb: "distribution 2.8", ggcr: "go-containerregistry"}
	args := []string{"push", "--progress", "plain", "--compression", "zstd", src}
	for _, reg := range regs {
		args = append(args, reg.Host+"/z/app:1.0")
	}
	out := mustCtrpush(t, root, args...)
	format, level, now, earlier, pushed, summaryLocal := compressedSummary(t, out.stderr)
	if format != "zstd" || level != "3" || now != 3 || earlier != 0 || summaryLocal != local || pushed == local {
		t.Fatalf("summary says %s level %s, %d now, %d earlier, pushing %s, local %s; want zstd 3, 3 now, 0 earlier, a new digest, local %s:\n%s",
			format, level, now, earlier, pushed, summaryLocal, local, out.stderr)
	}
	for _, reg := range regs {
		want := fmt.Sprintf("%s/z/app:1.0: digest: %s size: ", reg.Host, pushed)
		if !strings.Contains(out.stdout, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, out.stdout)
		}
	}

	var served ocispec.Manifest
	for _, reg := range regs {
		ref := reg.Host + "/z/app:1.0"
		d, mt, m := servedManifest(t, reg, "z/app", "1.0")
		if d != pushed || mt != ocispec.MediaTypeImageManifest || m.Config.MediaType != ocispec.MediaTypeImageConfig {
			t.Fatalf("%s serves %s (%s, config %s), want %s, an OCI manifest with an OCI config", ref, d, mt, m.Config.MediaType, pushed)
		}
		served = m
		assertLayersIn(t, reg, "z/app", m, "zstd")
		craneValidateFast(t, ref)
		t.Run("skopeo on "+regNames[reg], func(t *testing.T) { skopeoCheck(t, ref, m.Layers) })
	}

	// Progress named each layer of the image as it converted it, and the
	// copy it became (the layer the registries serve in its place).
	for i, l := range img.Manifests[0].Layers {
		id, as := l.Digest.Encoded()[:12], served.Layers[i].Digest.Encoded()[:12]
		if !regexp.MustCompile(`(?m)^`+id+`: Compressing \(zstd\)$`).MatchString(out.stderr) ||
			!regexp.MustCompile(`(?m)^`+id+`: Compressed \(zstd\) as `+as+`$`).MatchString(out.stderr) {
			t.Fatalf("progress does not say layer %s was compressed as %s:\n%s", id, as, out.stderr)
		}
	}

	// Again, to another repository of v3: the store kept the zstd copies
	// and v3 holds them, so nothing is compressed or uploaded: mounted.
	v3.Reset(t)
	again := mustCtrpush(t, root, "push", "--progress", "plain", "--compression", "zstd", src, v3.Host+"/other/app:1.0")
	if strings.Contains(again.stderr, "Compressing") || strings.Count(again.stderr, ": Compressed (zstd) as ") != 3 {
		t.Fatalf("the second push compressed again, or does not name the copies it reuses:\n%s", again.stderr)
	}
	if _, _, now, earlier, d, _ := compressedSummary(t, again.stderr); now != 0 || earlier != 3 || d != pushed {
		t.Fatalf("second push: %d converted now, %d from the earlier push, pushing %s; want 0, 3, %s", now, earlier, d, pushed)
	}
	mounts := 0
	for _, r := range v3.Requests(t) {
		switch {
		case r.Method == http.MethodPost && strings.Contains(r.Query, "mount="):
			if r.Status != http.StatusCreated {
				t.Fatalf("mount answered %d: %+v", r.Status, r)
			}
			mounts++
		case r.Method == http.MethodPost || r.Method == http.MethodPatch ||
			r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/"):
			t.Fatalf("the second push uploaded a blob: %+v", r)
		}
	}
	if mounts != 4 { // 3 layers and the config
		t.Fatalf("%d mounts, want 4 (3 layers and the config)", mounts)
	}
	if d, _, m := servedManifest(t, v3, "other/app", "1.0"); d != pushed {
		t.Fatalf("other/app:1.0 is %s, want %s", d, pushed)
	} else {
		assertLayersIn(t, v3, "other/app", m, "zstd")
	}
	craneValidateFast(t, v3.Host+"/other/app:1.0")
}

// The same kind of image with gzip: gzip layers (a Docker manifest
// keeps Docker's gzip type) that decompress to the diff_ids; without any
// flag the registry gets the image's own digest, its layers as they are.
func TestCompressionGzipAndNoFlag(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 96 << 10, Uncompressed: true, Docker: true, Seed: 2502})
	src := "saved.example/team/gz:1.0"
	local := importedDigest(t, root, writeArchive(t, img, "docker", src, "1.0"), src)

	out := mustCtrpush(t, root, "push", "--progress", "plain", "--compression", "gzip", src, reg.Host+"/gz/app:1.0")
	format, level, now, _, pushed, _ := compressedSummary(t, out.stderr)
	if format != "gzip" || level != "6" || now != 2 || pushed == local {
		t.Fatalf("summary says %s level %s, %d now, pushing %s (local %s):\n%s", format, level, now, pushed, local, out.stderr)
	}
	d, mt, m := servedManifest(t, reg, "gz/app", "1.0")
	if d != pushed || mt != images.MediaTypeDockerSchema2Manifest {
		t.Fatalf("gz/app:1.0 is %s (%s), want %s, a Docker manifest (gzip has Docker's type)", d, mt, pushed)
	}
	for _, l := range m.Layers {
		if l.MediaType != images.MediaTypeDockerSchema2LayerGzip {
			t.Fatalf("layer type %s, want %s", l.MediaType, images.MediaTypeDockerSchema2LayerGzip)
		}
	}
	assertLayersIn(t, reg, "gz/app", m, "gzip")
	craneValidate(t, reg.Host+"/gz/app:1.0")

	// No flag: nothing converted, the image's own digest and layers.
	plain := mustCtrpush(t, root, "push", "--progress", "plain", src, reg.Host+"/plain/app:1.0")
	if strings.Contains(plain.stderr, "Compress") {
		t.Fatalf("a push without --compression compressed:\n%s", plain.stderr)
	}
	listed := false
	for _, line := range strings.Split(mustCtrpush(t, root, "images", "--long").stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == src && strings.Contains(line, local.String()) {
			listed = true
		}
	}
	if !listed {
		t.Fatalf("ctrpush images does not list %s as %s", src, local)
	}
	d, _, m = servedManifest(t, reg, "plain/app", "1.0")
	if d != local {
		t.Fatalf("plain/app:1.0 is %s, want the image's own %s", d, local)
	}
	if crane := testenv.Tool(t, "CTRPUSH_CRANE", "crane digest"); crane != "" {
		cd, err := exec.Command(crane, "digest", "--insecure", reg.Host+"/plain/app:1.0").Output()
		if err != nil {
			t.Fatalf("crane digest: %v", err)
		}
		if got := strings.TrimSpace(string(cd)); got != local.String() {
			t.Fatalf("crane digest says %s, want the image's own %s", got, local)
		}
	}
	for i, l := range m.Layers {
		if l.Digest != img.Manifests[0].Layers[i].Digest || l.MediaType != images.MediaTypeDockerSchema2Layer {
			t.Fatalf("layer %d pushed as %s %s, want the image's own %s", i, l.MediaType, l.Digest, img.Manifests[0].Layers[i].Digest)
		}
	}
	assertLayersIn(t, reg, "plain/app", m, "")
	craneValidateFast(t, reg.Host+"/plain/app:1.0")
}

// A zstd image (an index of two platforms) ctrpush pushed is pulled by a
// real containerd 2.x with its Go client and unpacked into overlayfs (the
// unpacker checks each layer's uncompressed digest against the config's
// diff_ids): its layers are zstd, the snapshot exists and holds every
// file of the image. `ctrpush pull` takes it into a fresh store, which
// lists it and pushes it again with the same digest.
func TestZstdImagePullsAndUnpacksWithContainerd(t *testing.T) {
	t.Parallel()
	d := containerdtest.Start(t)
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 64 << 10, Uncompressed: true, Seed: 2503})
	src := "local.example/team/z:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", src, "1.0"))
	ref := reg.Host + "/zstd/app:1.0"
	out := mustCtrpush(t, root, "push", "--progress", "plain", "--compression", "zstd", src, ref)
	_, _, now, _, pushed, local := compressedSummary(t, out.stderr)
	if now != 4 || local != img.Target.Digest || pushed == local {
		t.Fatalf("%d layers converted, pushing %s (local %s); want 4, a new digest, local %s", now, pushed, local, img.Target.Digest)
	}

	c, err := containerd.New(d.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(t.Context(), "zstd")
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost))})
	snapshotter := defaults.DefaultSnapshotter // overlayfs
	pulled, err := c.Pull(ctx, ref, containerd.WithPullUnpack, containerd.WithPullSnapshotter(snapshotter),
		containerd.WithPlatform("linux/amd64"), containerd.WithResolver(resolver))
	if err != nil {
		t.Fatalf("containerd pull %s: %v", ref, err)
	}
	if pulled.Target().Digest != pushed {
		t.Fatalf("containerd pulled %s, ctrpush pushed %s", pulled.Target().Digest, pushed)
	}
	m, err := images.Manifest(ctx, c.ContentStore(), pulled.Target(), platforms.Only(platforms.MustParse("linux/amd64")))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 2 {
		t.Fatalf("containerd's manifest has %d layers", len(m.Layers))
	}
	for _, l := range m.Layers {
		if l.MediaType != ocispec.MediaTypeImageLayerZstd {
			t.Fatalf("containerd pulled a %s layer, want zstd", l.MediaType)
		}
	}
	unpacked, err := pulled.IsUnpacked(ctx, snapshotter)
	if err != nil || !unpacked {
		t.Fatalf("image unpacked in %s: %v, %v", snapshotter, unpacked, err)
	}
	diffIDs, err := pulled.RootFS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := img.Platform("linux/amd64").Layers; len(diffIDs) != len(want) {
		t.Fatalf("%d diff_ids", len(diffIDs))
	}
	chain := identity.ChainID(diffIDs)
	sn := c.SnapshotService(snapshotter)
	if _, err := sn.Stat(ctx, chain.String()); err != nil {
		t.Fatalf("snapshot %s of the unpacked image: %v", chain, err)
	}
	// The unpacked root filesystem holds every file of every layer.
	mounts, err := sn.View(ctx, "compress-test-view", chain.String())
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Remove(context.WithoutCancel(ctx), "compress-test-view")
	files := 0
	err = mount.WithReadonlyTempMount(ctx, mounts, func(rootfs string) error {
		for _, l := range img.Platform("linux/amd64").Layers {
			tr := tar.NewReader(bytes.NewReader(img.Blobs[l.Digest])) // plain tars
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				want, _ := io.ReadAll(tr)
				got, err := os.ReadFile(filepath.Join(rootfs, h.Name))
				if err != nil {
					return err
				}
				if !bytes.Equal(got, want) {
					return fmt.Errorf("%s differs in the unpacked image", h.Name)
				}
				files++
			}
		}
		return nil
	})
	if err != nil || files != 2 {
		t.Fatalf("the unpacked image: %d files checked, %v", files, err)
	}

	// ctrpush pull into a fresh store, then a push without compression
	// from there gives the same digest: the image is as pushed.
	fresh := t.TempDir()
	mustCtrpush(t, fresh, "pull", "--all-platforms", ref)
	listed := mustCtrpush(t, fresh, "images", "--long").stdout
	if !strings.Contains(listed, ref) || !strings.Contains(listed, pushed.String()) {
		t.Fatalf("ctrpush images after the pull lists:\n%s\nwant %s %s", listed, ref, pushed)
	}
	again := mustCtrpush(t, fresh, "push", ref, reg.Host+"/zstd/again:1.0")
	if !strings.Contains(again.stdout, "digest: "+pushed.String()) {
		t.Fatalf("push of the pulled image: %q, want digest %s", again.stdout, pushed)
	}
	craneValidateFast(t, reg.Host+"/zstd/again:1.0")
}

// Bad usage names the flags the user gave (TestBadInput has the rest):
// --compression with --referrers says --referrers, not --referrers-type,
// which this command line does not hold; with --referrers-type it says
// that one.
func TestCompressionExcludesReferrersNamingTheFlagGiven(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--referrers"}, "--referrers"},
		{[]string{"--referrers-type", "application/vnd.example.sig"}, "--referrers-type"},
	} {
		r := ctrpush(t, root, append(append([]string{"push", "--compression", "zstd"}, tc.args...), "example.test/team/app:1")...)
		line := strings.TrimSpace(r.stderr)
		if r.code != 2 || strings.Count(line, "\n") != 0 || r.stdout != "" {
			t.Fatalf("push --compression zstd %s: exit %d, stdout %q, stderr %q; want exit 2 and one error line", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr)
		}
		if named := strings.HasSuffix(line, "excludes "+tc.flag) || strings.Contains(line, "excludes "+tc.flag+":"); !named || !strings.Contains(line, "--compression") {
			t.Fatalf("push --compression zstd %s says %q: want it to name --compression and %s (the flag given)", strings.Join(tc.args, " "), line, tc.flag)
		}
	}
}
