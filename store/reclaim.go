package store

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/ctrpush/ctrpush/internal/owner"
)

// ReclaimLeases releases, in the namespace of ctx, the leases ctrpush
// processes that are gone still hold (those labelled with owner.Label;
// nobody else's) and returns how many it released. Deleting a lease lets
// the garbage collector take what only it held: blobs of a killed push's
// new index, a killed import's content and partial ingests.
func ReclaimLeases(ctx context.Context, lm leases.Manager) (int, error) {
	ls, err := lm.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list leases: %w", err)
	}
	n := 0
	for _, l := range ls {
		o, ok := l.Labels[owner.Label]
		if !ok || !owner.Gone(o) {
			continue
		}
		if err := lm.Delete(ctx, l, leases.SynchronousDelete); err != nil && !errdefs.IsNotFound(err) {
			return n, fmt.Errorf("release lease %s of %s, which is gone: %w", l.ID, o, err)
		}
		log.G(ctx).WithFields(log.Fields{"lease": l.ID, "owner": o}).Debug("released the lease of a process that is gone")
		n++
	}
	return n, nil
}

// ReclaimIngests aborts, in the namespace of ctx, the partial ingests of
// ctrpush processes that are gone (their refs name them, see
// owner.IngestMark; nobody else's) and returns how many it aborted: a
// killed import's or pull's, or one a failed operation could not remove.
func ReclaimIngests(ctx context.Context, cs content.Store) (int, error) {
	sts, err := cs.ListStatuses(ctx)
	if err != nil {
		return 0, fmt.Errorf("list ingests: %w", err)
	}
	n := 0
	for _, st := range sts {
		o, ok := owner.OfIngest(st.Ref)
		if !ok || !owner.Gone(o) {
			continue
		}
		if err := cs.Abort(ctx, st.Ref); err != nil && !errdefs.IsNotFound(err) {
			return n, fmt.Errorf("remove ingest %s of %s, which is gone: %w", st.Ref, o, err)
		}
		n++
	}
	return n, nil
}
