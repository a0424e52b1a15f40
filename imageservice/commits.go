package imageservice

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// Group commit of the blobs one pull fetches. On the embedded store every
// commit is a metadata transaction of its own, written and synced to disk
// while holding the database's one write lock: with many blobs in flight
// the pull waits on those commits, one after another, not on the network.
// groupedIngester makes the commits that arrive while one is being
// written wait and go together in the next transaction (s.batch: one
// write, one sync for all of them). Each blob's bytes are synced first, in
// parallel, outside the transaction, and its size and digest checked, so
// a commit fails inside the group only when the store itself does (then
// every commit of that group fails with it, and the pull with them).
// Commit still returns only once the blob is committed: what a handler
// reads next (a manifest's children) is there.
type groupedIngester struct {
	content.Ingester
	s *Service

	mu      sync.Mutex
	pending []*groupedCommit
	busy    bool
}

type groupedCommit struct {
	w        content.Writer
	size     int64
	expected digest.Digest
	opts     []content.Opt
	err      error
	done     chan struct{}
}

// groupCommits wraps in, whose writers belong to one operation (one
// lease, one namespace), when the store runs batches in one transaction;
// else it returns in as it is (a daemon commits each blob in a round trip
// of its own, which a group would not shorten).
func (s *Service) groupCommits(in content.Ingester) content.Ingester {
	if !s.batched {
		return in
	}
	return &groupedIngester{Ingester: in, s: s}
}

func (g *groupedIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	w, err := g.Ingester.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &groupedWriter{Writer: w, g: g}, nil
}

type groupedWriter struct {
	content.Writer
	g *groupedIngester
	// unsynced counts the bytes written since the last sync: a large blob
	// is synced every syncEvery bytes as it arrives, so the sync before
	// its commit finds little left to write (the disk works while the
	// network does, not after it).
	unsynced int64
}

// syncEvery is how many bytes of a blob are written between two syncs.
const syncEvery = 8 << 20

func (w *groupedWriter) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.unsynced += int64(n)
	if err == nil && w.unsynced >= syncEvery {
		if s, ok := w.Writer.(interface{ Sync() error }); ok {
			err = s.Sync()
		}
		w.unsynced = 0
	}
	return n, err
}

func (w *groupedWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	st, err := w.Status()
	if err != nil || (size > 0 && st.Offset != size) || (expected != "" && w.Digest() != expected) {
		// Commit says what is wrong, as it would alone.
		return w.Writer.Commit(ctx, size, expected, opts...)
	}
	if s, ok := w.Writer.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return w.Writer.Commit(ctx, size, expected, opts...)
		}
	}
	return w.g.commit(ctx, &groupedCommit{w: w.Writer, size: size, expected: expected, opts: opts, done: make(chan struct{})})
}

// commit queues c; the first caller with nothing being written leads: it
// writes groups (its own first) until none waits.
func (g *groupedIngester) commit(ctx context.Context, c *groupedCommit) error {
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if g.busy {
		g.mu.Unlock()
		<-c.done
		return c.err
	}
	g.busy = true
	g.mu.Unlock()
	for {
		g.mu.Lock()
		group := g.pending
		g.pending = nil
		if len(group) == 0 {
			g.busy = false
			g.mu.Unlock()
			break
		}
		g.mu.Unlock()
		g.write(ctx, group)
	}
	return c.err
}

// write commits group in one transaction; a commit that fails fails the
// group (see groupedIngester).
func (g *groupedIngester) write(ctx context.Context, group []*groupedCommit) {
	err := g.s.batch(ctx, func(ctx context.Context) error {
		for _, c := range group {
			if err := c.w.Commit(ctx, c.size, c.expected, c.opts...); err != nil {
				if errdefs.IsAlreadyExists(err) {
					c.err = err // as alone: the caller takes it as done
					continue
				}
				return err
			}
		}
		return nil
	})
	for _, c := range group {
		if err != nil {
			c.err = err
		}
		close(c.done)
	}
}
