package store

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/ctrpush/ctrpush/internal/testimage"
)

// DirectReads over the embedded store (the same content layout a daemon
// has): bytes come from the file and match; a corrupt file fails the read
// that reaches its end; a blob the namespace does not have is not found
// even though its file exists; an unreadable root falls back.
func TestDirectReads(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	st := openTestStore(t)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, LayerSize: 300 << 10})
	if err := img.WriteToStore(ctx, st.ContentStore(), st.ImageStore(), "example.com/a:1"); err != nil {
		t.Fatal(err)
	}
	layer := img.Manifests[0].Layers[0]
	root := filepath.Join(st.Root(), "content")
	read := func(cs content.Store) ([]byte, error) {
		ra, err := DirectReads(cs, root).ReaderAt(ctx, layer)
		if err != nil {
			return nil, err
		}
		defer ra.Close()
		_, isDirect := ra.(*verifyingReaderAt)
		if !isDirect {
			t.Log("read over the fallback")
		}
		return io.ReadAll(io.NewSectionReader(ra, 0, layer.Size))
	}
	b, err := read(st.ContentStore())
	if err != nil || string(b) != string(img.Blobs[layer.Digest]) {
		t.Fatalf("direct read: %v (%d bytes)", err, len(b))
	}

	// Another namespace: not found, although the file is there.
	other := namespaces.WithNamespace(t.Context(), "other")
	if _, err := DirectReads(st.ContentStore(), root).ReaderAt(other, layer); !errdefs.IsNotFound(err) {
		t.Fatalf("read from another namespace: %v", err)
	}

	// A corrupt file: the read that reaches the end fails.
	path := filepath.Join(root, "blobs", "sha256", layer.Digest.Encoded())
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0xff
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := read(st.ContentStore()); !errdefs.IsDataLoss(err) {
		t.Fatalf("reading a corrupt blob: %v, want data loss", err)
	}

	// A root that is not there: the store's own reader.
	ra, err := DirectReads(st.ContentStore(), t.TempDir()).ReaderAt(ctx, img.Manifests[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ra.(*verifyingReaderAt); ok {
		t.Fatal("read a file from a root that does not hold it")
	}
	ra.Close()
}
