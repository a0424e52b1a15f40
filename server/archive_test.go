package server

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// archiveFixture is a served store and an SDK client, with a saved
// two-platform image (amd64, arm64) removed from the store again.
type archiveFixture struct {
	*fixture
	c       *client.Client
	ctx     context.Context
	img     *testimage.Image
	name    string
	archive []byte
}

func newArchiveFixture(t *testing.T, seed uint64) *archiveFixture {
	t.Helper()
	f := &archiveFixture{fixture: newFixture(t, time.Second), ctx: namespaces.WithNamespace(t.Context(), "test")}
	f.img = testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, Seed: seed})
	f.name = "registry.example/team/app:1.0"
	f.add(t, f.img, f.name)
	var buf bytes.Buffer
	if err := f.svc.Save(f.ctx, &buf, []string{f.name}); err != nil {
		t.Fatal(err)
	}
	f.archive = buf.Bytes()
	if _, err := f.svc.Delete(f.ctx, f.name, imageservice.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.c, err = client.New(client.WithHost("unix://" + f.sock)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.c.Close() })
	return f
}

// has says which of ds the store has.
func (f *archiveFixture) has(t *testing.T, ds ...digest.Digest) []bool {
	t.Helper()
	out := make([]bool, len(ds))
	for i, d := range ds {
		_, err := f.store.ContentStore().Info(f.ctx, d)
		if err != nil && !errdefs.IsNotFound(err) {
			t.Fatal(err)
		}
		out[i] = err == nil
	}
	return out
}

func (f *archiveFixture) contentCount(t *testing.T) int {
	t.Helper()
	n := 0
	if err := f.store.ContentStore().Walk(f.ctx, func(content.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// docker load --platform through the SDK: only that platform's content is
// kept, under the archive's index; a platform the archive lacks is
// dockerd's error in the stream and leaves nothing behind.
func TestLoadPlatformWithSDK(t *testing.T) {
	t.Parallel()
	f := newArchiveFixture(t, 191)
	amd, arm := f.img.Platform("linux/amd64"), f.img.Platform("linux/arm64")

	load := func(p string) string {
		t.Helper()
		resp, err := f.c.ImageLoad(t.Context(), bytes.NewReader(f.archive), client.ImageLoadWithPlatforms(platforms.MustParse(p)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Close()
		b, _ := io.ReadAll(resp)
		return string(b)
	}
	out := load("linux/s390x")
	if !strings.Contains(out, `image `+f.name+` was loaded, but doesn't provide the requested platform ([linux/s390x])`) {
		t.Fatalf("load --platform linux/s390x: %s", out)
	}
	if _, err := f.svc.Image(f.ctx, f.name); !errdefs.IsNotFound(err) {
		t.Fatalf("a failed load left the image: %v", err)
	}
	if n := f.contentCount(t); n != 0 {
		t.Fatalf("a failed load left %d blobs", n)
	}

	out = load("linux/arm64")
	if !strings.Contains(out, `"stream":"Loaded image: `+f.name+`\n"`) {
		t.Fatalf("load --platform linux/arm64: %s", out)
	}
	got, err := f.svc.Image(f.ctx, f.name)
	if err != nil || got.Target.Digest != f.img.Target.Digest {
		t.Fatalf("loaded image: %s %v (want the archive's index %s)", got.Target.Digest, err, f.img.Target.Digest)
	}
	armHas := f.has(t, arm.Descriptor.Digest, arm.Config.Digest, arm.Layers[0].Digest, arm.Layers[1].Digest)
	amdHas := f.has(t, amd.Descriptor.Digest, amd.Config.Digest, amd.Layers[0].Digest, amd.Layers[1].Digest)
	for i := range armHas {
		if !armHas[i] || amdHas[i] {
			t.Fatalf("after load --platform linux/arm64: arm64 content %v, amd64 content %v", armHas, amdHas)
		}
	}
	p := platforms.MustParse("linux/arm64")
	if in, err := f.c.ImageInspect(t.Context(), f.name, client.ImageInspectWithPlatform(&p)); err != nil || in.Architecture != "arm64" {
		t.Fatalf("inspect of the loaded platform: %v %v", in.Architecture, err)
	}
}

// docker save with several platforms (API 1.48+) through the SDK: the
// image's own index, with only those platforms' content; a platform the
// image lacks is dockerd's error before any byte.
func TestSavePlatformsWithSDK(t *testing.T) {
	t.Parallel()
	f := newArchiveFixture(t, 192)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}, Layers: 2, Seed: 193})
	name := "registry.example/team/three:1.0"
	f.add(t, img, name)

	_, err := f.c.ImageSave(t.Context(), []string{name}, client.ImageSaveWithPlatforms(platforms.MustParse("linux/amd64"), platforms.MustParse("linux/s390x")))
	if err == nil || !strings.Contains(err.Error(), "image with reference "+name+" was found but does not provide the specified platform (linux/s390x)") {
		t.Fatalf("save of a platform the image lacks: %v", err)
	}
	archive := saveImages(t, f.c, []string{name}, client.ImageSaveWithPlatforms(platforms.MustParse("linux/amd64"), platforms.MustParse("linux/arm/v7")))
	if _, err := f.svc.Delete(f.ctx, name, imageservice.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := f.contentCount(t); n != 0 {
		t.Fatalf("store not empty before the load: %d blobs", n)
	}
	imported, err := f.svc.ImportStream(f.ctx, bytes.NewReader(archive), "saved")
	if err != nil || len(imported) != 1 || imported[0].Name != name || imported[0].Target.Digest != img.Target.Digest {
		t.Fatalf("load of the saved archive: %+v %v", imported, err)
	}
	for _, p := range []string{"linux/amd64", "linux/arm/v7"} {
		m := img.Platform(p)
		for i, has := range f.has(t, m.Descriptor.Digest, m.Config.Digest, m.Layers[0].Digest, m.Layers[1].Digest) {
			if !has {
				t.Fatalf("%s: blob %d not in the archive", p, i)
			}
		}
	}
	arm := img.Platform("linux/arm64")
	for i, has := range f.has(t, arm.Descriptor.Digest, arm.Config.Digest, arm.Layers[0].Digest, arm.Layers[1].Digest) {
		if has {
			t.Fatalf("linux/arm64 blob %d saved without being asked for", i)
		}
	}
}
