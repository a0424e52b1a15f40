package server

import (
	"context"
	"net/http"
	"sync"
)

// transferKey says which pushes are the same push. The registry host is
// its own field: pushes of one repository name to two registries never
// share a transfer (the classic engine once keyed on the name alone).
// auth is a hash of the request's credentials, so a client never rides on
// another client's credentials.
type transferKey struct {
	registry string // "host[:port]" the push goes to
	ref      string // the full normalized reference (tag, or none for every tag)
	platform string
	// referrers: the image's referrers go with it (?referrers=1).
	referrers bool
	// referrersTypes: the artifact types kept (?referrersType=), sorted,
	// joined by commas; empty for all.
	referrersTypes string
	auth           string
}

// transfer is one running push whose Docker JSON stream any number of
// clients watch; a client joining late first gets what it missed.
type transfer struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	buf      []byte
	changed  chan struct{} // closed and replaced on every write
	done     bool
	watchers int
}

func newTransfer(parent context.Context) *transfer {
	ctx, cancel := context.WithCancel(parent)
	return &transfer{ctx: ctx, cancel: cancel, changed: make(chan struct{})}
}

// Write appends to the stream (the progress.JSON sink writes here).
func (t *transfer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	close(t.changed)
	t.changed = make(chan struct{})
	return len(p), nil
}

// finish marks the stream complete.
func (t *transfer) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	close(t.changed)
	t.changed = make(chan struct{})
	t.cancel()
}

// join adds a watcher unless the transfer is already being abandoned.
func (t *transfer) join() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil && !t.done {
		return false
	}
	t.watchers++
	return true
}

// leave drops a watcher; the last one leaving a running transfer cancels
// it (docker cancels a push whose client went away).
func (t *transfer) leave() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.watchers--
	if t.watchers == 0 && !t.done {
		t.cancel()
	}
}

// stream copies the transfer's messages to w from the first one until the
// transfer ends or the client goes away.
func (t *transfer) stream(ctx context.Context, w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	off := 0
	for {
		t.mu.Lock()
		chunk := t.buf[off:len(t.buf):len(t.buf)]
		changed, done := t.changed, t.done
		t.mu.Unlock()
		if len(chunk) > 0 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			_ = rc.Flush()
			off += len(chunk)
			continue
		}
		if done {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}
