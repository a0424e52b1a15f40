package imageservice

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/progress"
)

// assertCompressed checks that reg's repo:tag is an image whose manifests
// (for an index, each platform's) have every layer in format, each
// decompressing to the tar its config's diff_ids name, and returns the
// manifests.
func assertCompressed(t *testing.T, reg *registrytest.Registry, repo, tag, format string) []ocispec.Manifest {
	t.Helper()
	_, mt, body, ok := reg.Manifest(t, repo, tag)
	if !ok {
		t.Fatalf("registry has no %s:%s", repo, tag)
	}
	var bodies [][]byte
	if images.IsIndexType(mt) {
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatal(err)
		}
		for _, e := range idx.Manifests {
			if e.Annotations[annotationReferenceType] == attestationManifestType {
				continue
			}
			_, _, b, ok := reg.Manifest(t, repo, e.Digest.String())
			if !ok {
				t.Fatalf("registry lacks manifest %s", e.Digest)
			}
			bodies = append(bodies, b)
		}
	} else {
		bodies = [][]byte{body}
	}
	var out []ocispec.Manifest
	for _, b := range bodies {
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		cb, ok := reg.Blob(t, repo, m.Config.Digest)
		if !ok {
			t.Fatalf("registry lacks config %s", m.Config.Digest)
		}
		var cfg ocispec.Image
		if err := json.Unmarshal(cb, &cfg); err != nil {
			t.Fatal(err)
		}
		for i, l := range m.Layers {
			if got, _ := layerCompression(l.MediaType); got != format {
				t.Fatalf("layer %d is %s, want %s", i, l.MediaType, format)
			}
			lb, ok := reg.Blob(t, repo, l.Digest)
			if !ok || digest.FromBytes(lb) != l.Digest || int64(len(lb)) != l.Size {
				t.Fatalf("registry's layer %s: present %v, other bytes or size", l.Digest, ok)
			}
			var zr io.Reader
			switch format {
			case CompressionZstd:
				d, err := zstd.NewReader(bytes.NewReader(lb))
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				zr = d
			case CompressionGzip:
				d, err := pgzip.NewReader(bytes.NewReader(lb))
				if err != nil {
					t.Fatal(err)
				}
				zr = d
			}
			tarBytes, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("layer %s does not decompress: %v", l.Digest, err)
			}
			if digest.FromBytes(tarBytes) != cfg.RootFS.DiffIDs[i] {
				t.Fatalf("layer %d decompresses to %s, the config's diff_id is %s", i, digest.FromBytes(tarBytes), cfg.RootFS.DiffIDs[i])
			}
		}
		out = append(out, m)
	}
	return out
}

// An image with uncompressed layers (as `docker save` holds them) pushed
// with zstd to distribution v3, Debian's 2.8 and ggcr in one run: every
// layer is zstd there and decompresses to its diff_id; the Docker manifest
// became OCI (Docker has no zstd type); the pushed digest is new and
// progress says so. A second push to another repository compresses
// nothing (the store kept the copies) and mounts them.
func TestPushCompressesUncompressedLayersWithZstd(t *testing.T) {
	t.Parallel()
	f, _ := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, LayerSize: 256 << 10, Uncompressed: true, Docker: true})
	deb, ggcr := registrytest.StartDebian(t), registrytest.StartGGCR(t)
	rec := &recorder{}
	zstdOpt := WithCompression(Compression{Format: CompressionZstd})
	results, err := f.svc.Push(f.ctx, f.name, zstdOpt, WithProgress(rec),
		WithDestination(f.reg.Host+"/z/app:1"), WithDestination(deb.Host+"/z/app:1"), WithDestination(ggcr.Host+"/z/app:1"))
	if err != nil {
		t.Fatal(err)
	}
	pushed := results[0].Descriptor
	if pushed.Digest == f.img.Target.Digest || !results[0].Compressed || results[0].Original != f.img.Target.Digest {
		t.Fatalf("result %+v: want a new digest, compressed, the image's own as Original", results[0])
	}
	if pushed.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("pushed a %s, want an OCI manifest (Docker schema 2 has no zstd layer)", pushed.MediaType)
	}
	for _, reg := range []*registrytest.Registry{f.reg, deb, ggcr} {
		if d, _, _, _ := reg.Manifest(t, "z/app", "1"); d != pushed.Digest {
			t.Fatalf("%s serves %s, want %s", reg.Host, d, pushed.Digest)
		}
		assertCompressed(t, reg, "z/app", "1", CompressionZstd)
	}
	compressed, said := 0, false
	for _, e := range rec.events {
		if e.Transfer != nil && e.Transfer.State == progress.Compressed {
			compressed++
			if !strings.HasPrefix(e.Transfer.Status(), "Compressed (zstd) as ") {
				t.Fatalf("status %q", e.Transfer.Status())
			}
		}
		if strings.Contains(e.Message, "Compressed with zstd") && strings.Contains(e.Message, pushed.Digest.String()) && strings.Contains(e.Message, f.img.Target.Digest.String()) {
			said = true
		}
	}
	if compressed != 3 || !said {
		t.Fatalf("%d Compressed events (want 3), the new and own digests said: %v", compressed, said)
	}

	// Again, to another repository of v3: nothing compressed, mounted.
	rec = &recorder{}
	f.reg.Reset(t)
	results, err = f.svc.Push(f.ctx, f.name, zstdOpt, WithProgress(rec), WithDestination(f.reg.Host+"/z/other:1"))
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Descriptor.Digest != pushed.Digest {
		t.Fatalf("the second push pushed %s, want the same %s", results[0].Descriptor.Digest, pushed.Digest)
	}
	for _, e := range rec.events {
		if e.Transfer != nil && e.Transfer.State == progress.Compressing {
			t.Fatalf("the second push compressed %s again", e.Transfer.Digest)
		}
	}
	mounts := 0
	for _, r := range f.reg.Requests(t) {
		if r.Method == http.MethodPost && strings.Contains(r.Query, "mount=") && r.Status == http.StatusCreated {
			mounts++
		}
		if strings.Contains(r.Query, "digest=") && r.BodyBytes > 1024 {
			t.Fatalf("the second push uploaded %d bytes (%s %s)", r.BodyBytes, r.Method, r.Path)
		}
	}
	if mounts != 4 {
		t.Fatalf("%d mounts, want the 3 compressed layers and the config", mounts)
	}
}

// --force-compression with gzip on a gzip image recompresses every layer
// (new digests, still gzip, same diff_ids); without it nothing changes and
// the image keeps its digest. An index keeps its platforms and its
// attestations, whose reference follows the manifest it describes.
func TestForceCompressionAndIndex(t *testing.T) {
	t.Parallel()
	f, _ := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 64 << 10, Attestations: true})
	res, err := f.svc.Push(f.ctx, f.name, WithCompression(Compression{Format: CompressionGzip}), WithDestination(f.reg.Host+"/g/app:1"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Descriptor.Digest != f.img.Target.Digest || res[0].Compressed {
		t.Fatalf("gzip on a gzip image without --force-compression pushed %s (compressed %v), want the image's own %s", res[0].Descriptor.Digest, res[0].Compressed, f.img.Target.Digest)
	}
	res, err = f.svc.Push(f.ctx, f.name, WithCompression(Compression{Format: CompressionGzip, Level: 9, Force: true}), WithDestination(f.reg.Host+"/g/forced:1"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Descriptor.Digest == f.img.Target.Digest || !res[0].Compressed {
		t.Fatalf("--force-compression pushed the image's own digest")
	}
	ms := assertCompressed(t, f.reg, "g/forced", "1", CompressionGzip)
	old := map[digest.Digest]bool{}
	for _, m := range f.img.Manifests {
		for _, l := range m.Layers {
			old[l.Digest] = true
		}
	}
	for _, m := range ms {
		for _, l := range m.Layers {
			if old[l.Digest] {
				t.Fatalf("layer %s was not recompressed", l.Digest)
			}
		}
	}
	_, _, body, _ := f.reg.Manifest(t, "g/forced", "1")
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 4 {
		t.Fatalf("the index lists %d entries, want 2 platforms and 2 attestations", len(idx.Manifests))
	}
	listed := map[string]bool{}
	for _, e := range idx.Manifests {
		listed[e.Digest.String()] = true
	}
	for i, e := range idx.Manifests {
		src := f.img.Manifests
		if i < 2 {
			if e.Platform == nil || e.Platform.Architecture != src[i].Platform.Architecture {
				t.Fatalf("entry %d: platform %v, want %s", i, e.Platform, src[i].Platform.Architecture)
			}
			continue
		}
		if e.Digest != f.img.Attestation[i-2].Digest {
			t.Fatalf("attestation %d changed: %s", i-2, e.Digest)
		}
		if ref := e.Annotations[annotationReferenceDigest]; !listed[ref] || ref == src[i-2].Descriptor.Digest.String() {
			t.Fatalf("attestation %d refers to %s, want the compressed manifest listed", i-2, ref)
		}
	}
}

// The store keeps a converted layer as long as its source: after the push
// and a garbage collection it is there (the next push reuses it), and the
// dry run says so; once the image is gone, collection removes both. The
// converted manifests, which only the push's lease held, are collected.
func TestConvertedLayersLiveAsLongAsTheirSource(t *testing.T) {
	t.Parallel()
	f, _ := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 64 << 10, Uncompressed: true})
	opt := WithCompression(Compression{Format: CompressionZstd, Level: 5})
	plans, err := f.svc.PlanPush(f.ctx, f.name, opt)
	if err != nil {
		t.Fatal(err)
	}
	if c := plans[0].Compression; c == nil || c.Layers != 2 || c.Reused != 0 || c.Format != CompressionZstd || c.Level != 5 {
		t.Fatalf("dry run before: %+v, want 2 layers to compress", plans[0].Compression)
	}
	res, err := f.svc.Push(f.ctx, f.name, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.GarbageCollect(f.ctx); err != nil {
		t.Fatal(err)
	}
	cs := f.store.ContentStore()
	var copies []digest.Digest
	for _, l := range f.img.Manifests[0].Layers {
		info, err := cs.Info(f.ctx, l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		d := digest.Digest(info.Labels["containerd.io/gc.ref.content.ctrpush.compressed.zstd-5"])
		if _, err := cs.Info(f.ctx, d); err != nil {
			t.Fatalf("the converted copy %q of %s is gone after GC: %v", d, l.Digest, err)
		}
		copies = append(copies, d)
	}
	if _, err := cs.Info(f.ctx, res[0].Descriptor.Digest); err == nil {
		t.Fatal("the converted manifest outlived the push's lease")
	}
	plans, err = f.svc.PlanPush(f.ctx, f.name, opt)
	if err != nil {
		t.Fatal(err)
	}
	if c := plans[0].Compression; c == nil || c.Layers != 0 || c.Reused != 2 {
		t.Fatalf("dry run after: %+v, want 2 reused", plans[0].Compression)
	}
	if _, err := f.svc.Remove(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	if err := f.store.GarbageCollect(f.ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range copies {
		if _, err := cs.Info(f.ctx, d); err == nil {
			t.Fatalf("converted copy %s outlived its source", d)
		}
	}
}

// A platform picked from an index and compressed: the line saying one
// manifest goes instead of the index names the digest really pushed (the
// compressed manifest), not the stored one.
func TestReductionNamesTheCompressedDigest(t *testing.T) {
	t.Parallel()
	f, _ := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Uncompressed: true})
	rec := &recorder{}
	res, err := f.svc.Push(f.ctx, f.name, WithPlatforms("linux/arm64"), WithCompression(Compression{Format: CompressionZstd}), WithProgress(rec))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range rec.events {
		if e.Reduced != nil {
			n++
			if e.Reduced.Pushed.Digest != res[0].Descriptor.Digest || !strings.Contains(e.Reduced.Text(), res[0].Descriptor.Digest.String()) {
				t.Fatalf("the reduction names %s, the push pushed %s", e.Reduced.Pushed.Digest, res[0].Descriptor.Digest)
			}
		}
	}
	if n != 1 || res[0].Descriptor.Digest == f.img.Manifests[1].Descriptor.Digest {
		t.Fatalf("%d reduction lines, pushed %s (the stored arm64 manifest is %s)", n, res[0].Descriptor.Digest, f.img.Manifests[1].Descriptor.Digest)
	}
}

func withCompressHooks(h *compressHooks) TransferOption {
	return func(o *transferOptions) error { o.compressHooks = h; return nil }
}

// pushedSink passes events to rec and closes pushed at the first Pushed.
type pushedSink struct {
	rec    *recorder
	once   sync.Once
	pushed chan struct{}
}

func (s *pushedSink) Emit(e progress.Event) {
	s.rec.Emit(e)
	if e.Transfer != nil && e.Transfer.State == progress.Pushed {
		s.once.Do(func() { close(s.pushed) })
	}
}

// The compressed layers go to the registries while the others are still
// being compressed: the last layer's conversion is held until a layer has
// been pushed (without the overlap it would wait for ever: the test gives
// up after 20 s and fails). Each layer is pushed once per registry and
// shown so (no "Layer already exists" for what the push itself sent).
func TestCompressedLayersGoWhileOthersCompress(t *testing.T) {
	t.Parallel()
	f, _ := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 4, LayerSize: 128 << 10, Uncompressed: true})
	other := registrytest.StartGGCR(t)
	last := f.img.Manifests[0].Layers[3].Digest
	sink := &pushedSink{rec: &recorder{}, pushed: make(chan struct{})}
	overlapped := false
	hooks := &compressHooks{beforeConvert: func(d digest.Digest) {
		if d != last {
			return
		}
		select {
		case <-sink.pushed:
			overlapped = true
		case <-time.After(20 * time.Second):
		}
	}}
	dests := []string{f.reg.Host + "/early/app:1", other.Host + "/early/app:1"}
	res, err := f.svc.Push(f.ctx, f.name, WithCompression(Compression{Format: CompressionZstd}), withCompressHooks(hooks), WithProgress(sink),
		WithDestination(dests[0]), WithDestination(dests[1]))
	if err != nil {
		t.Fatal(err)
	}
	if !overlapped {
		t.Fatal("no layer was pushed before the last one was compressed")
	}
	for _, reg := range []*registrytest.Registry{f.reg, other} {
		assertCompressed(t, reg, "early/app", "1", CompressionZstd)
		if d, _, _, _ := reg.Manifest(t, "early/app", "1"); d != res[0].Descriptor.Digest {
			t.Fatalf("%s serves %s, want %s", reg.Host, d, res[0].Descriptor.Digest)
		}
	}
	final := map[string]progress.State{}
	for _, e := range sink.rec.events {
		if e.Transfer != nil && e.Transfer.Kind == progress.KindLayer && e.Transfer.State != progress.Compressing && e.Transfer.State != progress.Compressed {
			final[e.Destination+" "+e.Transfer.Digest] = e.Transfer.State
		}
	}
	if len(final) != 8 {
		t.Fatalf("%d layer transfers shown, want 4 per destination: %v", len(final), final)
	}
	for k, st := range final {
		if st != progress.Pushed {
			t.Fatalf("%s ended %s, want Pushed", k, st)
		}
	}
	uploads := 0
	for _, r := range f.reg.Requests(t) {
		if r.Method == http.MethodPut && strings.Contains(r.Query, "digest=") && r.BodyBytes > 0 {
			uploads++
		}
	}
	if uploads != 5 { // 4 layers and the config
		t.Fatalf("%d blob uploads to v3, want 5 (each blob once)", uploads)
	}
}

// A re-push with --compression of an image pushed so before sends only the
// tag check: the copies are in the store, so nothing is compressed and no
// early send asks anything.
func TestCompressedRepushSendsOnlyTheCheck(t *testing.T) {
	t.Parallel()
	f, _ := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 64 << 10, Uncompressed: true})
	opt := WithCompression(Compression{Format: CompressionZstd})
	if _, err := f.svc.Push(f.ctx, f.name, opt); err != nil {
		t.Fatal(err)
	}
	f.reg.Reset(t)
	if _, err := f.svc.Push(f.ctx, f.name, opt); err != nil {
		t.Fatal(err)
	}
	if reqs := f.reg.Requests(t); len(reqs) != 2 {
		t.Fatalf("the re-push sent %d requests, want the tag HEAD and tags/list: %+v", len(reqs), reqs)
	}
}

// A local layer whose bytes do not match its digest is never compressed
// into a copy: the push fails naming it, nothing is tagged, no copy is
// linked to the layer.
func TestCorruptLayerIsNotCompressed(t *testing.T) {
	t.Parallel()
	f, _ := multiFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 1, LayerSize: 64 << 10, Uncompressed: true})
	l := f.img.Manifests[0].Layers[0]
	f.flipByte(t, l.Digest)
	_, err := f.svc.Push(f.ctx, f.name, WithCompression(Compression{Format: CompressionZstd}))
	if err == nil || !strings.Contains(err.Error(), l.Digest.String()) {
		t.Fatalf("push of a corrupt layer: %v, want an error naming %s", err, l.Digest)
	}
	if _, _, _, ok := f.reg.Manifest(t, "src/app", "1.0"); ok {
		t.Fatal("the registry is tagged")
	}
	info, ierr := f.store.ContentStore().Info(f.ctx, l.Digest)
	if ierr != nil {
		t.Fatal(ierr)
	}
	if c := info.Labels[convertedLabel(&Compression{Format: CompressionZstd, Level: DefaultZstdLevel})]; c != "" {
		t.Fatalf("the corrupt layer was linked to a copy %s", c)
	}
}
