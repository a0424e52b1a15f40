package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// DefaultIdleTimeout is how long a request may make no progress — no byte
// of it taken by the connection, no answer once it is sent, no byte of the
// answer — before it fails as a transient fault (RetryPolicy.IdleTimeout).
// It bounds idleness, never the whole transfer: a 10 GiB upload on a slow
// link goes on as long as bytes move. One minute is kubelet's old
// --image-pull-progress-deadline for the same question (containerd's CRI
// took it over and later raised it to 5 minutes, for a whole pull stuck
// behind disk I/O on a busy node); a single request of ours that sees
// nothing for a minute is stalled, and the retry that follows starts it
// again or resumes it.
const DefaultIdleTimeout = time.Minute

// IdleError is a request that made no progress for Idle: the registry took
// no byte of it, did not answer it once sent, or stopped sending the
// answer. It is transient: the retry policy tries again.
type IdleError struct {
	Method, URL string // the request (URL without query or user info)
	// Stage is what was under way: "sending the request", "waiting for
	// the answer" or "reading the answer".
	Stage string
	Idle  time.Duration
}

func (e *IdleError) Error() string {
	return fmt.Sprintf("no progress for %s %s to %s %s: the registry stalled", e.Idle, e.Stage, e.Method, e.URL)
}

// Timeout reports true: an IdleError is a timeout.
func (e *IdleError) Timeout() bool { return true }

// Stages of a request, for IdleError.
const (
	stageSending int32 = iota
	stageWaiting
	stageCommitting // waiting for the answer to a commit: not bounded here
	stageReading
)

var stageNames = [...]string{"sending the request", "waiting for the answer", "waiting for the answer", "reading the answer"}

// watchdog cancels one request that makes no progress for idle: it is
// told of every byte that moves (touch), and checks at most once per
// idle period.
type watchdog struct {
	idle  time.Duration
	last  atomic.Int64 // time of the last progress, UnixNano
	stage atomic.Int32
	// paused: the time is not the registry's (our own read of the bytes
	// to send, or a caller that has not asked for the next bytes of the
	// answer yet: a slow disk is no stalled registry).
	paused atomic.Bool
	fired  atomic.Pointer[IdleError]
	done   atomic.Bool
	timer  *time.Timer
	cancel context.CancelCauseFunc
	method string
	url    string
}

// watch starts a watchdog over a request sent with the returned context.
func watch(ctx context.Context, idle time.Duration, method, url string) (*watchdog, context.Context) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &watchdog{idle: idle, cancel: cancel, method: method, url: RedactURL(url)}
	w.touch()
	w.timer = time.AfterFunc(idle, w.check)
	return w, ctx
}

func (w *watchdog) touch() { w.last.Store(time.Now().UnixNano()) }

// setStage moves to stage s, counting idleness from now.
func (w *watchdog) setStage(s int32) {
	w.touch()
	w.stage.Store(s)
}

func (w *watchdog) check() {
	if w.done.Load() {
		return
	}
	since := time.Since(time.Unix(0, w.last.Load()))
	stage := w.stage.Load()
	if stage == stageCommitting || w.paused.Load() || since < w.idle {
		w.timer.Reset(max(w.idle-since, time.Millisecond))
		return
	}
	e := &IdleError{Method: w.method, URL: w.url, Stage: stageNames[stage], Idle: w.idle}
	w.fired.Store(e)
	w.cancel(e)
}

// stop ends the watch; the request's context is cancelled (its answer
// has been read or dropped).
func (w *watchdog) stop() {
	if w.done.CompareAndSwap(false, true) {
		w.timer.Stop()
		w.cancel(context.Canceled)
	}
}

// err is the IdleError when the watchdog cancelled the request, else nil.
func (w *watchdog) err() error {
	if e := w.fired.Load(); e != nil {
		return e
	}
	return nil
}

// watchedBody is a request body that tells the watchdog of each byte the
// connection takes, and when the last one is taken.
type watchedBody struct {
	r      io.Reader
	w      *watchdog
	left   int64
	commit bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.paused.Store(true)
	n, err := b.r.Read(p)
	b.w.touch()
	b.w.paused.Store(false)
	b.left -= int64(n)
	if b.left <= 0 || err != nil {
		b.sent()
	}
	return n, err
}

// sent: every byte is taken; the wait for the answer starts.
func (b *watchedBody) sent() {
	if b.commit {
		b.w.setStage(stageCommitting)
	} else {
		b.w.setStage(stageWaiting)
	}
}

// watchedAnswer is an answer's body under the watchdog: each byte read is
// progress; a read cut by the watchdog fails as a *TransportError with the
// *IdleError; Close (or the end) stops the watch.
type watchedAnswer struct {
	io.ReadCloser
	w  *watchdog
	op string
}

func (a *watchedAnswer) Read(p []byte) (int, error) {
	a.w.touch()
	a.w.paused.Store(false)
	n, err := a.ReadCloser.Read(p)
	a.w.touch()
	a.w.paused.Store(true)
	if err != nil {
		if ie := a.w.err(); ie != nil && !errors.Is(err, io.EOF) {
			return n, &TransportError{Op: a.op, Err: ie}
		}
		if errors.Is(err, io.EOF) {
			a.w.stop()
		}
	}
	return n, err
}

func (a *watchedAnswer) Close() error {
	err := a.ReadCloser.Close()
	a.w.stop()
	return err
}

// readError is err from reading an answer as a *TransportError, unless it
// already is one (a stall the watchdog cut).
func readError(op string, err error) error {
	var te *TransportError
	if errors.As(err, &te) {
		return err
	}
	return &TransportError{Op: op, Err: err}
}
