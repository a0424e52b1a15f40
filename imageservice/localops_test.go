package imageservice

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"

	"github.com/ctrpush/ctrpush/internal/testimage"
)

// Inspect and History for a platform, Save → Delete → ImportStream with the
// same digest, Delete's docker semantics (by name, by ID, force, noprune)
// and Prune freeing exactly the content nothing references, on the real
// embedded store.
func TestLocalImageOperations(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	st := openTestStore(t)
	svc, err := New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), WithNamespace("test"),
		WithHostPlatform(platforms.MustParse("linux/amd64")))
	if err != nil {
		t.Fatal(err)
	}
	a := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, Seed: 181})
	b := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 182})
	if err := a.WriteToStore(ctx, st.ContentStore(), st.ImageStore(), "example.com/a:1"); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteToStore(ctx, st.ContentStore(), st.ImageStore(), "example.com/b:1"); err != nil {
		t.Fatal(err)
	}

	// Inspect and History for a platform.
	arm := a.Platform("linux/arm64")
	d, err := svc.Inspect(ctx, "example.com/a:1", ForPlatform(platforms.MustParse("linux/arm64")))
	if err != nil || d.Manifest.Digest != arm.Descriptor.Digest || d.Config.Architecture != "arm64" {
		t.Fatalf("Inspect arm64: %s %q %v", d.Manifest.Digest, d.Config.Architecture, err)
	}
	var pnf *PlatformNotFoundError
	if _, err := svc.Inspect(ctx, "example.com/a:1", ForPlatform(platforms.MustParse("linux/s390x"))); !errors.As(err, &pnf) || !errdefs.IsNotFound(err) {
		t.Fatalf("Inspect s390x: %v", err)
	}
	h, err := svc.History(ctx, "example.com/a:1", ForPlatform(platforms.MustParse("linux/arm64")))
	if err != nil || len(h) != 2 || h[0].Layer.Digest != arm.Layers[1].Digest || h[1].Layer.Digest != arm.Layers[0].Digest {
		t.Fatalf("History arm64: %+v %v", h, err)
	}

	// Save a whole index, remove it, load it back: the same digest.
	var archive bytes.Buffer
	if err := svc.Save(ctx, &archive, []string{"example.com/a:1"}); err != nil {
		t.Fatal(err)
	}
	res, err := svc.Delete(ctx, "example.com/a:1", DeleteOptions{})
	if err != nil || len(res.Untagged) != 1 || res.Deleted != a.Target.Digest {
		t.Fatalf("Delete a: %+v %v", res, err)
	}
	if _, err := st.ContentStore().Info(ctx, arm.Layers[0].Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("a layer of a deleted image is still in the store: %v", err)
	}
	imported, err := svc.ImportStream(ctx, bytes.NewReader(archive.Bytes()), "saved")
	if err != nil || len(imported) != 1 || imported[0].Name != "example.com/a:1" || imported[0].Target.Digest != a.Target.Digest || len(imported[0].Missing) != 0 {
		t.Fatalf("load of the saved archive: %+v %v", imported, err)
	}
	// The image removed (and garbage collected) while it is being saved:
	// the save's lease keeps its content, the archive is whole.
	archive.Reset()
	removing := &onFirstWrite{w: &archive, fn: func() error {
		_, err := svc.Delete(ctx, "example.com/a:1", DeleteOptions{})
		return err
	}}
	if err := svc.Save(ctx, removing, []string{"example.com/a:1"}); err != nil || removing.err != nil {
		t.Fatalf("Save while the image is removed: %v, %v", err, removing.err)
	}
	if _, err := svc.Image(ctx, "example.com/a:1"); !errdefs.IsNotFound(err) {
		t.Fatalf("the image was not removed during the save: %v", err)
	}
	imported, err = svc.ImportStream(ctx, bytes.NewReader(archive.Bytes()), "saved")
	if err != nil || len(imported) != 1 || imported[0].Target.Digest != a.Target.Digest || len(imported[0].Missing) != 0 {
		t.Fatalf("load of the archive saved during a removal: %+v %v", imported, err)
	}
	// Save of one platform: that manifest alone.
	archive.Reset()
	if err := svc.Save(ctx, &archive, []string{"example.com/a:1"}, ForPlatform(platforms.MustParse("linux/arm64"))); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Delete(ctx, "example.com/a:1", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	imported, err = svc.ImportStream(ctx, bytes.NewReader(archive.Bytes()), "saved")
	if err != nil || len(imported) != 1 || imported[0].Target.Digest != arm.Descriptor.Digest {
		t.Fatalf("load of the arm64 archive: %+v %v", imported, err)
	}
	if _, err := st.ContentStore().Info(ctx, a.Platform("linux/amd64").Layers[0].Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("the arm64 archive carried an amd64 layer: %v", err)
	}
	// A partial index (a platform's layer absent, as after a pull of one
	// platform) is saved with what is there and loads back as partial.
	if _, err := svc.Delete(ctx, "example.com/a:1", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteToStore(ctx, st.ContentStore(), st.ImageStore(), "example.com/a:1"); err != nil {
		t.Fatal(err)
	}
	if err := st.ContentStore().Delete(ctx, arm.Layers[1].Digest); err != nil {
		t.Fatal(err)
	}
	archive.Reset()
	if err := svc.Save(ctx, &archive, []string{"example.com/a:1"}); err != nil {
		t.Fatalf("Save of a partial index: %v", err)
	}
	if _, err := svc.Delete(ctx, "example.com/a:1", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	imported, err = svc.ImportStream(ctx, bytes.NewReader(archive.Bytes()), "saved")
	if err != nil || len(imported) != 1 || imported[0].Target.Digest != a.Target.Digest || len(imported[0].Missing) != 1 || imported[0].Missing[0].Architecture != "arm64" {
		t.Fatalf("load of a partial index: %+v %v", imported, err)
	}
	if err := svc.Save(ctx, &archive, []string{"example.com/nope:1"}); !errdefs.IsNotFound(err) {
		t.Fatalf("Save of an unknown image: %v", err)
	}

	// Two names: by ID without force is a conflict, by name an untag only.
	if _, err := svc.Tag(ctx, "example.com/b:1", "example.com/b:2"); err != nil {
		t.Fatal(err)
	}
	var mn *MultipleNamesError
	if _, err := svc.Delete(ctx, b.Target.Digest.Encoded()[:12], DeleteOptions{}); !errors.As(err, &mn) || !errdefs.IsConflict(err) || len(mn.Names) != 2 {
		t.Fatalf("Delete by ID of an image with two names: %v", err)
	}
	res, err = svc.Delete(ctx, "example.com/b:2", DeleteOptions{})
	if err != nil || len(res.Untagged) != 1 || res.Deleted != "" {
		t.Fatalf("Delete of one of two names: %+v %v", res, err)
	}
	if _, err := svc.Tag(ctx, "example.com/b:1", "example.com/b:3"); err != nil {
		t.Fatal(err)
	}
	// Force by ID with NoPrune: every name goes, the content stays for Prune.
	res, err = svc.Delete(ctx, b.Target.Digest.String(), DeleteOptions{Force: true, NoPrune: true})
	if err != nil || len(res.Untagged) != 2 || res.Deleted != b.Target.Digest {
		t.Fatalf("forced Delete by ID: %+v %v", res, err)
	}
	if _, err := st.ContentStore().Info(ctx, b.Manifests[0].Layers[0].Digest); err != nil {
		t.Fatalf("NoPrune removed content: %v", err)
	}
	before := countContent(t, svc)
	report, err := svc.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	for _, bl := range b.Blobs {
		want += int64(len(bl))
	}
	if len(report.Deleted) != len(b.Blobs) || report.SpaceReclaimed != want || countContent(t, svc) != before-len(b.Blobs) {
		t.Fatalf("Prune: %d blobs, %d bytes; want %d, %d", len(report.Deleted), report.SpaceReclaimed, len(b.Blobs), want)
	}
	if _, err := svc.Image(ctx, "example.com/a:1"); err != nil {
		t.Fatalf("Prune removed an image: %v", err)
	}
	if report, err := svc.Prune(ctx); err != nil || len(report.Deleted) != 0 {
		t.Fatalf("second Prune: %+v %v", report, err)
	}
}

func countContent(t *testing.T, svc *Service) int {
	t.Helper()
	n := 0
	if err := svc.content.Walk(testContext(t), func(content.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// onFirstWrite calls fn before the first write to w.
type onFirstWrite struct {
	w    io.Writer
	fn   func() error
	done bool
	err  error
}

func (o *onFirstWrite) Write(p []byte) (int, error) {
	if !o.done {
		o.done = true
		o.err = o.fn()
	}
	return o.w.Write(p)
}
