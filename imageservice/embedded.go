package imageservice

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/core/metadata/boltutil"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	bolt "go.etcd.io/bbolt"
)

// DefaultStoreTimeout is how long one metadata transaction waits for
// another process's to end before it reports the store as in use. Other
// ctrpush processes hold the database only for their own transactions
// (milliseconds), so a wait this long means one holds it open.
const DefaultStoreTimeout = 10 * time.Second

// Embedded is containerd's own content store, bolt metadata (images,
// leases, garbage collection) and lease manager, opened in this process
// under one root directory: the same code the containerd daemon runs,
// without a daemon.
//
// Deleting a lease through LeaseManager runs garbage collection at once, as
// the daemon does for leases.SynchronousDelete, so content that only the
// lease held (a failed import, a push's temporary index) does not linger.
//
// Several processes can use one store at once: the metadata database is
// open only around transactions (sharedBolt), and leases keep each
// process's content from the others' garbage collection.
type Embedded struct {
	root    string
	backend content.Store // the blob files, under root/content
	bolt    *sharedBolt
	db      *metadata.DB
	leases  leases.Manager
	images  images.Store
}

// EmbeddedOption configures OpenEmbedded.
type EmbeddedOption func(*embeddedOptions)

type embeddedOptions struct {
	timeout time.Duration
}

// WithStoreTimeout sets how long to wait for another process holding the
// store (default DefaultStoreTimeout).
func WithStoreTimeout(d time.Duration) EmbeddedOption {
	return func(o *embeddedOptions) { o.timeout = d }
}

// OpenEmbedded opens (creating if needed) the embedded store under root:
// root/content for blobs and root/metadata.db for metadata. Other
// processes may use the store at the same time; a transaction that waits
// longer than the store timeout for another process's is a
// StoreInUseError (wrapping errdefs.ErrUnavailable). A metadata database
// that is not a sound bolt file (truncated, overwritten) is a
// DamagedStoreError, here or from any later transaction that reads the
// damaged part.
func OpenEmbedded(ctx context.Context, root string, opts ...EmbeddedOption) (*Embedded, error) {
	o := embeddedOptions{timeout: DefaultStoreTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if root == "" {
		return nil, fmt.Errorf("open store: empty root directory: %w", errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	cs, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		return nil, fmt.Errorf("open content store in %s: %w", root, err)
	}
	dbPath := filepath.Join(root, "metadata.db")
	bdb := newSharedBolt(dbPath, root, o.timeout)
	db := metadata.NewDB(bdb, cs, nil)
	if err := db.Init(ctx); err != nil {
		_ = bdb.Close()
		var inUse *StoreInUseError
		if errors.As(err, &inUse) {
			return nil, inUse
		}
		var damaged *DamagedStoreError
		if errors.As(err, &damaged) {
			return nil, damaged
		}
		return nil, fmt.Errorf("initialise metadata %s: %w", dbPath, err)
	}
	e := &Embedded{root: root, backend: cs, bolt: bdb, db: db, images: &collectingImages{Store: metadata.NewImageStore(db), db: db}}
	e.leases = &collectingLeases{Manager: metadata.NewLeaseManager(db), db: db}
	if err := e.reclaim(ctx); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	return e, nil
}

// reclaim releases, in every namespace, the leases of ctrpush processes
// that are gone (killed mid-push or mid-import), and so their content.
func (e *Embedded) reclaim(ctx context.Context) error {
	var nss []string
	if err := e.db.View(func(tx *bolt.Tx) error {
		var err error
		nss, err = metadata.NewNamespaceStore(tx).List(ctx)
		return err
	}); err != nil {
		return fmt.Errorf("list namespaces of %s: %w", e.root, err)
	}
	for _, ns := range nss {
		n, err := ReclaimLeases(namespaces.WithNamespace(ctx, ns), e.leases)
		if err != nil {
			return fmt.Errorf("store %s: %w", e.root, err)
		}
		if n > 0 {
			log.G(ctx).WithFields(log.Fields{"namespace": ns, "leases": n}).Debug("released the leases of ctrpush processes that are gone")
		}
	}
	return nil
}

// Root is the directory the store lives in.
func (e *Embedded) Root() string { return e.root }

// ContentStore is the namespaced content store (metadata over local blobs).
func (e *Embedded) ContentStore() content.Store { return e.db.ContentStore() }

// BlobProvider reads blob files directly, without the metadata database:
// for content already known to be in the namespace and held by a lease
// (WithBlobProvider).
func (e *Embedded) BlobProvider() content.Provider { return e.backend }

// ImageStore is the image records store.
func (e *Embedded) ImageStore() images.Store { return e.images }

// LeaseManager manages leases; Delete also collects garbage.
func (e *Embedded) LeaseManager() leases.Manager { return e.leases }

// GarbageCollect removes content no image or lease references.
func (e *Embedded) GarbageCollect(ctx context.Context) error {
	_, err := e.db.GarbageCollect(ctx)
	return err
}

// Batch runs fn with one metadata transaction in its context, so many
// small updates (distribution-source labels of every blob) commit — and
// sync to disk — once. Pass it to New with WithBatch.
func (e *Embedded) Batch(ctx context.Context, fn func(context.Context) error) error {
	return e.db.Update(func(tx *bolt.Tx) error { return fn(boltutil.WithTransaction(ctx, tx)) })
}

// Close closes the store.
func (e *Embedded) Close() error { return e.db.Close() }

type collectingLeases struct {
	leases.Manager
	db *metadata.DB
}

func (l *collectingLeases) Delete(ctx context.Context, lease leases.Lease, opts ...leases.DeleteOpt) error {
	if err := l.Manager.Delete(ctx, lease, opts...); err != nil {
		return err
	}
	if _, err := l.db.GarbageCollect(ctx); err != nil {
		return fmt.Errorf("garbage collect after releasing lease %s: %w", lease.ID, err)
	}
	return nil
}

// collectingImages removes unreferenced content after a synchronous
// delete, as the daemon's garbage collector does.
type collectingImages struct {
	images.Store
	db *metadata.DB
}

func (s *collectingImages) Delete(ctx context.Context, name string, opts ...images.DeleteOpt) error {
	if err := s.Store.Delete(ctx, name, opts...); err != nil {
		return err
	}
	var do images.DeleteOptions
	for _, o := range opts {
		if err := o(ctx, &do); err != nil {
			return err
		}
	}
	if do.Synchronous {
		if _, err := s.db.GarbageCollect(ctx); err != nil {
			return fmt.Errorf("garbage collect after removing %s: %w", name, err)
		}
	}
	return nil
}
