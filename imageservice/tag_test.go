package imageservice

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/ctrpush/ctrpush/internal/testimage"
)

// Tag, lookup by name and ID, and Remove with its garbage collection on
// the real embedded store.
func TestTagAndRemove(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	st := openTestStore(t)
	svc, err := New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), WithNamespace("test"))
	if err != nil {
		t.Fatal(err)
	}
	a := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 1})
	b := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 2})
	for name, img := range map[string]*testimage.Image{"example.com/a:1": a, "example.com/b:1": b} {
		if err := img.WriteToStore(ctx, st.ContentStore(), st.ImageStore(), name); err != nil {
			t.Fatal(err)
		}
	}

	// docker tag a example.com/c → example.com/c:latest
	name, err := svc.Tag(ctx, "example.com/a:1", "example.com/c")
	if err != nil || name != "example.com/c:latest" {
		t.Fatalf("tag: %q, %v", name, err)
	}
	for _, n := range []string{"example.com/c", "example.com/c:latest", a.Target.Digest.String(), a.Target.Digest.Encoded()[:12]} {
		img, err := svc.Image(ctx, n)
		if err != nil || img.Target.Digest != a.Target.Digest {
			t.Fatalf("Image(%q) = %s, %v; want %s", n, img.Target.Digest, err, a.Target.Digest)
		}
	}
	if tags, err := svc.Tags(ctx, "example.com/c"); err != nil || len(tags) != 1 || tags[0] != "latest" {
		t.Fatalf("Tags(example.com/c) = %v, %v", tags, err)
	}
	if tags, err := svc.Tags(ctx, "example.com/none"); err != nil || len(tags) != 0 {
		t.Fatalf("Tags of an unknown repository = %v, %v", tags, err)
	}
	// an existing name moves
	if _, err := svc.Tag(ctx, b.Target.Digest.Encoded()[:12], "example.com/c:latest"); err != nil {
		t.Fatal(err)
	}
	if img, _ := svc.Image(ctx, "example.com/c"); img.Target.Digest != b.Target.Digest {
		t.Fatalf("example.com/c is %s after re-tagging, want %s", img.Target.Digest, b.Target.Digest)
	}

	det, err := svc.Inspect(ctx, "example.com/a:1")
	if err != nil {
		t.Fatal(err)
	}
	if det.Manifest.Digest != a.Target.Digest || det.Platform.Architecture != "amd64" || det.Config.OS != "linux" ||
		len(det.Names) != 1 || det.Names[0] != "example.com/a:1" || det.Size == 0 {
		t.Fatalf("Inspect: %+v", det)
	}

	for _, tc := range []struct {
		name string
		is   error
	}{{"example.com/nope:1", errdefs.ErrNotFound}, {"Bad//Name", errdefs.ErrInvalidArgument}, {"sha256:" + digest.FromString("x").Encoded(), errdefs.ErrNotFound}} {
		if _, err := svc.Image(ctx, tc.name); !errors.Is(err, tc.is) {
			t.Fatalf("Image(%q): %v, want %v", tc.name, err, tc.is)
		}
	}
	if _, err := svc.Tag(ctx, "example.com/a:1", "example.com/d@"+a.Target.Digest.String()); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("tag to a digest: %v", err)
	}

	// b has two names: removing it by ID is a conflict, by name it works
	// and keeps the content the other name holds.
	if _, err := svc.Remove(ctx, b.Target.Digest.String()); !errdefs.IsConflict(err) {
		t.Fatalf("remove by ID of an image with two names: %v", err)
	}
	if _, err := svc.Remove(ctx, "example.com/b:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ContentStore().Info(ctx, b.Manifests[0].Layers[0].Digest); err != nil {
		t.Fatalf("a blob example.com/c still needs is gone: %v", err)
	}
	// The last name: its content is collected.
	if removed, err := svc.Remove(ctx, b.Target.Digest.Encoded()[:12]); err != nil || removed != "example.com/c:latest" {
		t.Fatalf("remove by ID: %q, %v", removed, err)
	}
	if _, err := st.ContentStore().Info(ctx, b.Manifests[0].Layers[0].Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("the removed image's layer is still in the store: %v", err)
	}
	if _, err := st.ContentStore().Info(ctx, a.Manifests[0].Layers[0].Digest); err != nil {
		t.Fatalf("another image's layer was collected: %v", err)
	}
}
