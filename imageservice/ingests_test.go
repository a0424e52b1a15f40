package imageservice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/ctrpush/ctrpush/internal/owner"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/store"
)

// fullDisk stands for a file system with room for `free` more bytes of
// blobs: a blob write past it fails with ENOSPC, and from then on so does
// every metadata write (bolt cannot write its pages either) until a blob
// or an ingest is removed, which frees room.
type fullDisk struct {
	ingestDir string
	mu        sync.Mutex
	free      int64
	full      bool
	// partial is the size of the ingest files when the disk filled up.
	partial int64
}

func (d *fullDisk) options() store.EmbeddedOption {
	return store.WithFaults(
		func(cs content.Store) content.Store { return &fullDiskStore{Store: cs, d: d} },
		func(tx metadata.Transactor) metadata.Transactor { return &fullDiskTx{Transactor: tx, d: d} })
}

func (d *fullDisk) isFull() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.full
}

func (d *fullDisk) freed() {
	d.mu.Lock()
	d.full = false
	d.mu.Unlock()
}

type fullDiskStore struct {
	content.Store
	d *fullDisk
}

func (s *fullDiskStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	w, err := s.Store.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &fullDiskWriter{Writer: w, d: s.d}, nil
}

func (s *fullDiskStore) Abort(ctx context.Context, ref string) error {
	err := s.Store.Abort(ctx, ref)
	if err == nil {
		s.d.freed()
	}
	return err
}

func (s *fullDiskStore) Delete(ctx context.Context, dgst digest.Digest) error {
	err := s.Store.Delete(ctx, dgst)
	if err == nil {
		s.d.freed()
	}
	return err
}

type fullDiskWriter struct {
	content.Writer
	d *fullDisk
}

func (w *fullDiskWriter) Write(p []byte) (int, error) {
	d := w.d
	d.mu.Lock()
	room := min(int64(len(p)), d.free)
	d.free -= room
	d.mu.Unlock()
	n, err := w.Writer.Write(p[:room])
	if err != nil || n == len(p) {
		return n, err
	}
	d.mu.Lock()
	d.full = true
	d.partial = dirSize(d.ingestDir)
	d.mu.Unlock()
	return n, fmt.Errorf("write: %w", syscall.ENOSPC)
}

type fullDiskTx struct {
	metadata.Transactor
	d *fullDisk
}

func (t *fullDiskTx) Update(fn func(*bolt.Tx) error) error {
	if t.d.isFull() {
		return fmt.Errorf("write metadata.db: %w", syscall.ENOSPC)
	}
	return t.Transactor.Update(fn)
}

// dirSize is the size of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// An import that fills the disk leaves nothing: not its partial ingest
// (before, the lease that held it could not be released on the full disk,
// nor garbage collected, so the ingest kept the disk full), not its lease,
// not the blobs it had committed; and the next import works.
func TestFailedImportOnAFullDiskLeavesNothing(t *testing.T) {
	root := t.TempDir()
	disk := &fullDisk{ingestDir: filepath.Join(root, "content", "ingest"), free: 3 << 20}
	st, err := store.OpenEmbedded(t.Context(), root, disk.options())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(st.ContentStore(), st.ImageStore(), st.LeaseManager())
	if err != nil {
		t.Fatal(err)
	}
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 2 << 20, Seed: 91})
	var archive bytes.Buffer
	if err := img.WriteOCITar(&archive, testimage.NameAnnotations("example.com/full/app:1.0", "1.0")); err != nil {
		t.Fatal(err)
	}
	_, err = svc.ImportStream(t.Context(), bytes.NewReader(archive.Bytes()), "archive")
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("import on a full disk: %v, want ENOSPC", err)
	}
	assertFullDiskLeftNothing(t, svc.withNamespace(t.Context()), st, disk, "import")
	if _, err := svc.ImportStream(t.Context(), bytes.NewReader(archive.Bytes()), "archive"); err != nil {
		t.Fatalf("import with room again: %v", err)
	}
}

// Opening a store removes the partial ingests of ctrpush processes that
// are gone, leased or not (an unleased ingest is otherwise kept 24 hours;
// a lease's record may be gone while its ingest stayed), and only theirs.
func TestOpenReclaimsIngestsOfGoneProcesses(t *testing.T) {
	if owner.This == "" {
		t.Skip("no /proc: processes cannot be told apart")
	}
	root := t.TempDir()
	st, err := store.OpenEmbedded(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	boot := strings.SplitN(owner.This, ":", 3)[2]
	gone := fmt.Sprintf("%d:1:%s", 1<<22+1, boot) // above any pid_max
	write := func(ref string) {
		w, err := st.ContentStore().Writer(ctx, content.WithRef(ref))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(bytes.Repeat([]byte("x"), 64<<10)); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	write("layer-a" + owner.IngestMark + gone + "/1")
	write("layer-b" + owner.IngestMark + owner.This + "/1") // ours: alive
	write("someone-elses")
	before := dirSize(filepath.Join(root, "content", "ingest"))
	st.Close()

	st, err = store.OpenEmbedded(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var refs []string
	sts, err := st.ContentStore().ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		refs = append(refs, s.Ref)
	}
	if len(refs) != 2 || strings.Contains(strings.Join(refs, " "), "layer-a") {
		t.Fatalf("ingests after reopening: %q; want the gone process's removed, the others kept", refs)
	}
	if n := dirSize(filepath.Join(root, "content", "ingest")); n > before-64<<10 || n < 2*64<<10 {
		t.Fatalf("%d bytes of ingest files (%d before); want the gone process's 64 KiB removed, the others kept", n, before)
	}
}

// A pull that fills the disk leaves nothing either: no partial ingest, no
// lease, no blob; the next pull works.
func TestFailedPullOnAFullDiskLeavesNothing(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 2 << 20, Seed: 92}, "full/pull:1.0")
	if _, err := f.svc.Push(f.ctx, f.name); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	disk := &fullDisk{ingestDir: filepath.Join(root, "content", "ingest"), free: 3 << 20}
	st, err := store.OpenEmbedded(t.Context(), root, disk.options())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), WithNamespace("test"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := f.ctx
	if _, err := svc.Pull(ctx, f.name, WithMaxConcurrentUploads(1)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("pull on a full disk: %v, want ENOSPC", err)
	}
	assertFullDiskLeftNothing(t, ctx, st, disk, "pull")
	if _, err := svc.Pull(ctx, f.name); err != nil {
		t.Fatalf("pull with room again: %v", err)
	}
}

// assertFullDiskLeftNothing checks that a failed operation (what) on a full
// disk wrote a partial ingest and left nothing of it, no lease and no
// blob, then gives the disk room again.
func assertFullDiskLeftNothing(t *testing.T, ctx context.Context, st *store.Embedded, disk *fullDisk, what string) {
	t.Helper()
	if disk.partial == 0 {
		t.Fatal("the disk filled up with no partial ingest written: the test tested nothing")
	}
	if n := dirSize(disk.ingestDir); n != 0 {
		t.Errorf("the failed %s left %d bytes of partial ingest (%d when the disk filled up)", what, n, disk.partial)
	}
	if sts, err := st.ContentStore().ListStatuses(ctx); err != nil || len(sts) != 0 {
		t.Errorf("ingests after the failed %s: %+v %v", what, sts, err)
	}
	if ls, err := st.LeaseManager().List(ctx); err != nil || len(ls) != 0 {
		t.Errorf("leases after the failed %s: %+v %v", what, ls, err)
	}
	blobs := 0
	if err := st.ContentStore().Walk(ctx, func(content.Info) error { blobs++; return nil }); err != nil || blobs != 0 {
		t.Errorf("the failed %s left %d blobs (%v)", what, blobs, err)
	}
	disk.mu.Lock()
	disk.free = 1 << 30
	disk.mu.Unlock()
}
