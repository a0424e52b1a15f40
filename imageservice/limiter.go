package imageservice

import (
	"context"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// limiter bounds the transfers in flight to one destination, for a graph
// push or for the graph pushes of one level of referrers together, and
// stops them after a failure. It owns every rule of that bound:
//
//   - a count of transfers in flight: the caller's when one was given
//     (WithMaxConcurrentUploads), else DefaultMaxConcurrentUploads, and no
//     more than nearUploads to a registry the tag check found close by;
//   - when no count was given, the bytes of the blobs in flight
//     (DefaultMaxBytesInFlight), and at most nearUploads uploads sending
//     bytes to a registry close by: a transfer may start before the check
//     answers, an upload takes that room once it knows;
//   - a transfer that fails marks the limiter failed before it frees its
//     room, so a transfer that gets the room starts nothing (the context
//     is cancelled only after the failure has returned, and a
//     --max-retries or a permanent error must end the push with nothing
//     more sent).
type limiter struct {
	slots    *semaphore.Weighted
	bytes    *semaphore.Weighted // nil when a count was given
	maxBytes int64
	// near bounds the uploads to each destination close by; nil when a
	// count was given.
	near   map[*destination]*semaphore.Weighted
	failed atomic.Bool
	hooks  *limiterHooks
}

// limiterHooks let a test control a limiter's timing (transferOptions).
type limiterHooks struct {
	// freed runs after a failed transfer freed its room and before its
	// failure returns: the window the failed mark closes. err is the
	// transfer's error (errStopped for one another's failure stopped).
	freed func(err error)
	// near makes the registry count as close by, whatever its first
	// round trip took on a busy machine.
	near bool
}

// newLimiter is the bound of transfers that o asks for, to the
// destinations of legs together: a blob takes one room however many
// destinations it goes to (its bytes are read once), and an upload to a
// destination close by takes one of that destination's nearUploads.
func newLimiter(o *transferOptions, legs []*leg) *limiter {
	l := &limiter{hooks: o.limiterHooks}
	limit := o.maxUploads
	if !o.countGiven {
		if !slices.ContainsFunc(legs, func(g *leg) bool { return !l.isNear(g.dest) }) {
			limit = min(limit, nearUploads)
		}
		l.bytes, l.maxBytes = semaphore.NewWeighted(o.maxBytes), o.maxBytes
		l.near = map[*destination]*semaphore.Weighted{}
		for _, g := range legs {
			l.near[g.dest] = semaphore.NewWeighted(nearUploads)
		}
	}
	l.slots = semaphore.NewWeighted(int64(limit))
	return l
}

// isNear reports whether d counts as close by.
func (l *limiter) isNear(d *destination) bool {
	return l.hooks != nil && l.hooks.near || d.isNear()
}

// stopped reports whether a transfer failed: nothing new starts.
func (l *limiter) stopped() bool { return l.failed.Load() }

// acquire takes room for a transfer of size bytes, calling onWait before
// it waits for room. It fails with errStopped when a transfer has failed
// (before or while it waited), with ctx's error when ctx ends. release
// frees the room, marking the limiter failed first when the transfer's
// err is not nil.
func (l *limiter) acquire(ctx context.Context, size int64, onWait func()) (release func(err error), err error) {
	if l.failed.Load() {
		return nil, errStopped
	}
	var w int64
	if l.bytes != nil {
		w = min(max(size, 1), l.maxBytes)
		if !l.bytes.TryAcquire(w) {
			onWait()
			if err := l.bytes.Acquire(ctx, w); err != nil {
				return nil, err
			}
		}
	}
	if !l.slots.TryAcquire(1) {
		onWait()
		if err := l.slots.Acquire(ctx, 1); err != nil {
			if l.bytes != nil {
				l.bytes.Release(w)
			}
			return nil, err
		}
	}
	free := func() {
		l.slots.Release(1)
		if l.bytes != nil {
			l.bytes.Release(w)
		}
	}
	if l.failed.Load() {
		free()
		return nil, errStopped
	}
	return func(err error) {
		if err != nil {
			l.failed.Store(true) // before the room is free
		}
		free()
		if err != nil && l.hooks != nil && l.hooks.freed != nil {
			l.hooks.freed(err)
		}
	}, nil
}

// acquireUpload takes, for an upload to d about to send its bytes, the
// room among the uploads to d when it is close by (when no count was
// given and the tag check found the registry close by; no room to take
// otherwise). It fails and releases as acquire does.
func (l *limiter) acquireUpload(ctx context.Context, d *destination) (release func(err error), err error) {
	near := l.near[d]
	if near == nil || !l.isNear(d) {
		return func(error) {}, nil
	}
	if err := near.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	if l.failed.Load() {
		near.Release(1)
		return nil, errStopped // another transfer failed: it says why
	}
	return func(err error) {
		if err != nil {
			l.failed.Store(true) // before the room is free
		}
		near.Release(1)
	}, nil
}
