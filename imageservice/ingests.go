package imageservice

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/ctrpush/ctrpush/internal/owner"
)

// Ingest refs end with owner.IngestMark, this process (owner.This) and
// the operation: a partial ingest is tied to the process writing it (when
// that process is gone, the next ctrpush to open the store removes it),
// and the operation keeps two operations of one process (a server) from
// sharing, and one's failure from aborting, the other's ingest.

var ingestOps atomic.Uint64

// ownedIngests is a content store for one operation (an import, a pull):
// its writers use refs that name this process and the operation, and it
// remembers them, so a failed operation aborts what it started
// (abortStarted) instead of leaving partial ingests behind.
type ownedIngests struct {
	content.Store
	suffix string
	mu     sync.Mutex
	refs   map[string]bool
}

func newOwnedIngests(cs content.Store) *ownedIngests {
	return &ownedIngests{Store: cs, suffix: fmt.Sprintf("%s%s/%d", owner.IngestMark, owner.This, ingestOps.Add(1)), refs: map[string]bool{}}
}

func (o *ownedIngests) own(ref string) string {
	if ref == "" {
		return ref
	}
	return ref + o.suffix
}

func (o *ownedIngests) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, opt := range opts {
		if err := opt(&wo); err != nil {
			return nil, err
		}
	}
	ref := o.own(wo.Ref)
	w, err := o.Store.Writer(ctx, append(opts, content.WithRef(ref))...)
	if err == nil {
		o.mu.Lock()
		o.refs[ref] = true
		o.mu.Unlock()
	}
	return w, err
}

func (o *ownedIngests) Abort(ctx context.Context, ref string) error {
	return o.Store.Abort(ctx, o.own(ref))
}

func (o *ownedIngests) Status(ctx context.Context, ref string) (content.Status, error) {
	return o.Store.Status(ctx, o.own(ref))
}

// abortStarted aborts every ingest the operation started and did not
// commit. Call it before the operation's lease is released.
func (o *ownedIngests) abortStarted(ctx context.Context) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	for ref := range o.refs {
		if err := o.Store.Abort(ctx, ref); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("ref", ref).Warn("could not remove the partial ingest of a failed operation")
		}
	}
	o.refs = map[string]bool{}
}
