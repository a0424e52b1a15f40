package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

	"github.com/ctrpush/ctrpush/internal/owner"
)

// DefaultTimeout is how long one metadata transaction waits for
// another process's to end before it reports the store as in use. Other
// ctrpush processes hold the database only for their own transactions
// (milliseconds), so a wait this long means one holds it open.
const DefaultTimeout = 10 * time.Second

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
	content *embeddedContent
	leases  leases.Manager
	images  images.Store
}

// EmbeddedOption configures OpenEmbedded.
type EmbeddedOption func(*embeddedOptions)

type embeddedOptions struct {
	timeout time.Duration
	// faults wrap the blob files' store and the metadata transactions
	// (tests inject faults there: a full disk).
	backendFault func(content.Store) content.Store
	txFault      func(metadata.Transactor) metadata.Transactor
}

// WithFaults wraps the blob files' store and the metadata transactions of
// the store: a test injects faults there (a full disk). Either may be nil.
func WithFaults(blobs func(content.Store) content.Store, tx func(metadata.Transactor) metadata.Transactor) EmbeddedOption {
	return func(o *embeddedOptions) { o.backendFault, o.txFault = blobs, tx }
}

// WithTimeout sets how long to wait for another process holding the
// store (default DefaultTimeout).
func WithTimeout(d time.Duration) EmbeddedOption {
	return func(o *embeddedOptions) { o.timeout = d }
}

// OpenEmbedded opens (creating if needed) the embedded store under root:
// root/content for blobs and root/metadata.db for metadata. Other
// processes may use the store at the same time; a transaction that waits
// longer than the store timeout for another process's is a
// InUseError (wrapping errdefs.ErrUnavailable). A metadata database
// that is not a sound bolt file (truncated, overwritten) is a
// DamagedError, here or from any later transaction that reads the
// damaged part.
func OpenEmbedded(ctx context.Context, root string, opts ...EmbeddedOption) (*Embedded, error) {
	o := embeddedOptions{timeout: DefaultTimeout}
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
	var backend content.Store = cs
	if o.backendFault != nil {
		backend = o.backendFault(cs)
	}
	dbPath := filepath.Join(root, "metadata.db")
	bdb := newSharedBolt(dbPath, root, o.timeout)
	var tx metadata.Transactor = bdb
	if o.txFault != nil {
		tx = o.txFault(bdb)
	}
	db := metadata.NewDB(tx, backend, nil)
	if err := db.Init(ctx); err != nil {
		_ = bdb.Close()
		var inUse *InUseError
		if errors.As(err, &inUse) {
			return nil, inUse
		}
		var damaged *DamagedError
		if errors.As(err, &damaged) {
			return nil, damaged
		}
		return nil, fmt.Errorf("initialise metadata %s: %w", dbPath, err)
	}
	e := &Embedded{root: root, backend: backend, bolt: bdb, db: db, images: &collectingImages{Store: metadata.NewImageStore(db), db: db}}
	e.content = &embeddedContent{Store: db.ContentStore(), e: e}
	e.leases = &collectingLeases{Manager: metadata.NewLeaseManager(db), db: db}
	if err := e.reclaim(ctx); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	return e, nil
}

// reclaim removes what ctrpush processes that are gone (killed mid-push
// or mid-import) left: their partial ingests, straight from the blob
// files (no metadata write needed: this works on a full disk, and frees
// it), then, in every namespace, their leases and so their content.
func (e *Embedded) reclaim(ctx context.Context) error {
	aborted := e.reclaimIngests(ctx)
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
	if aborted > 0 {
		// The records of those ingests whose lease was already gone.
		if _, err := e.db.GarbageCollect(ctx); err != nil {
			log.G(ctx).WithError(err).Warn("could not collect garbage after removing the ingests of ctrpush processes that are gone")
		}
	}
	return nil
}

// reclaimIngests removes the blob files' partial ingests whose ref names a
// ctrpush process that is gone (owner.IngestMark) and returns how many.
func (e *Embedded) reclaimIngests(ctx context.Context) int {
	sts, err := e.backend.ListStatuses(ctx)
	if err != nil {
		log.G(ctx).WithError(err).Warn("could not list the store's ingests")
		return 0
	}
	n := 0
	for _, st := range sts {
		o, ok := owner.OfIngest(st.Ref)
		if !ok || !owner.Gone(o) {
			continue
		}
		if err := e.backend.Abort(ctx, st.Ref); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("ref", st.Ref).Warn("could not remove the partial ingest of a ctrpush process that is gone")
			continue
		}
		log.G(ctx).WithFields(log.Fields{"ref": st.Ref, "owner": o}).Debug("removed the partial ingest of a ctrpush process that is gone")
		n++
	}
	return n
}

// embeddedContent is the namespaced content store whose Abort removes an
// ingest's files even when the metadata cannot be written.
type embeddedContent struct {
	content.Store
	e *Embedded
}

// Abort aborts the ingest ref. When the metadata transaction fails (a
// full disk: bolt cannot write), the ingest's files are removed anyway,
// which frees their space; its record goes with its lease.
func (c *embeddedContent) Abort(ctx context.Context, ref string) error {
	err := c.Store.Abort(ctx, ref)
	if err == nil || errdefs.IsNotFound(err) {
		return err
	}
	ns, nerr := namespaces.NamespaceRequired(ctx)
	if nerr != nil {
		return err
	}
	sts, lerr := c.e.backend.ListStatuses(ctx)
	if lerr != nil {
		return err
	}
	removed := false
	for _, st := range sts {
		if backendRefOf(st.Ref, ns, ref) && c.e.backend.Abort(ctx, st.Ref) == nil {
			removed = true
		}
	}
	if !removed {
		return err
	}
	log.G(ctx).WithError(err).WithField("ref", ref).Debug("removed the ingest's files; its record goes with its lease")
	return nil
}

// backendRefOf says whether bref is the blob files' ref of ingest ref in
// namespace ns: containerd's metadata names it "NS/SEQUENCE/REF".
func backendRefOf(bref, ns, ref string) bool {
	rest, ok := strings.CutPrefix(bref, ns+"/")
	if !ok {
		return false
	}
	seq, r, ok := strings.Cut(rest, "/")
	if !ok || seq == "" || strings.Trim(seq, "0123456789") != "" {
		return false
	}
	return r == ref
}

// Root is the directory the store lives in.
func (e *Embedded) Root() string { return e.root }

// ContentStore is the namespaced content store (metadata over local blobs).
func (e *Embedded) ContentStore() content.Store { return e.content }

// BlobProvider reads blob files directly, without the metadata database:
// for content already known to be in the namespace and held by a lease
// (imageservice.WithBlobProvider).
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
// sync to disk — once. Pass it to imageservice.New with WithBatch.
func (e *Embedded) Batch(ctx context.Context, fn func(context.Context) error) error {
	return e.db.Update(func(tx *bolt.Tx) error { return fn(boltutil.WithTransaction(ctx, tx)) })
}

// Close closes the store.
func (e *Embedded) Close() error {
	err := e.db.Close()
	if berr := e.bolt.Close(); err == nil {
		err = berr
	}
	return err
}

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

// InUseError says another process holds the embedded store in Root
// and did not release it within Waited. It wraps errdefs.ErrUnavailable.
type InUseError struct {
	Root   string
	Waited time.Duration
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("store %s is in use by another process: it held the store's metadata database (%s) for longer than the %s a transaction waits; wait for it to finish or open another root", e.Root, filepath.Join(e.Root, "metadata.db"), e.Waited)
}

// Unwrap lets errdefs.IsUnavailable hold.
func (e *InUseError) Unwrap() error { return errdefs.ErrUnavailable }

// ConnectError says the containerd daemon at Address could not be reached.
type ConnectError struct {
	Address string
	Err     error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("connect to containerd at %s: %v (is the daemon running?)", e.Address, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }
