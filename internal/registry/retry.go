package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/containerd/errdefs"
)

// RetryPolicy says which failures are worth another attempt and how long
// to wait before it. The zero value never retries.
type RetryPolicy struct {
	// MaxRetries is how many times a failed request is tried again.
	MaxRetries int
	// Backoff is the first wait; each retry doubles it, up to MaxBackoff,
	// and a random half of it is taken off (jitter).
	Backoff, MaxBackoff time.Duration
	// RetryAfterCap is the longest Retry-After honoured: a registry that
	// asks for more fails the operation at once.
	RetryAfterCap time.Duration
	// Statuses are the registry answers worth another attempt. Requests
	// that got no answer (TransportError) are retried unless Permanent.
	Statuses []int
	// IdleTimeout is how long one request may make no progress (no byte
	// of it taken, no answer once it is sent, no byte of the answer)
	// before it fails as a transient *IdleError; 0: DefaultIdleTimeout.
	// The answer to a blob commit is waited for longer (HostsConfig's
	// ResponseHeaderTimeout).
	IdleTimeout time.Duration
}

// idle is the idle bound p gives a request.
func (p RetryPolicy) idle() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return DefaultIdleTimeout
}

// DefaultMaxRetries is DefaultRetryPolicy's MaxRetries.
const DefaultMaxRetries = 5

// DefaultRetryPolicy retries a transient fault 5 times, waiting 0.5 s,
// 1 s, 2 s … (at most 30 s, with jitter), honouring a Retry-After of up to
// 2 minutes: connection refused, reset or timed out, 408, 429, 500, 502,
// 503 and 504.
var DefaultRetryPolicy = RetryPolicy{
	MaxRetries:    DefaultMaxRetries,
	Backoff:       500 * time.Millisecond,
	MaxBackoff:    30 * time.Second,
	RetryAfterCap: 2 * time.Minute,
	Statuses: []int{http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
}

// Transient reports whether err is worth another attempt under p: a
// registry answer with one of p.Statuses that names no fault in what was
// sent (Error.Refusal), or a request that got no answer
// for a reason that may pass (not a certificate, name resolution or local
// error). Cancellation and corrupt data are never transient.
func (p RetryPolicy) Transient(err error) bool {
	var final *finalError
	if err == nil || errors.Is(err, errdefs.ErrDataLoss) || errors.Is(err, context.Canceled) || errors.As(err, &final) {
		return false
	}
	var re *Error
	if errors.As(err, &re) {
		// A refusal of what was sent stays one whatever the status.
		return slices.Contains(p.Statuses, re.Status) && !re.Refusal()
	}
	// A TransportError never stands for the caller's own cancellation or
	// deadline (send reports those as they are), so a timeout inside one
	// is the connection's or the client's: worth another attempt.
	var te *TransportError
	if errors.As(err, &te) {
		return !te.Permanent()
	}
	return false
}

// Wait is how long to wait before retry number attempt (0 for the first
// retry) after err: Retry-After when the registry sent one, else the
// backoff with jitter. ok is false when the registry asks for longer than
// RetryAfterCap.
func (p RetryPolicy) Wait(attempt int, err error) (wait time.Duration, ok bool) {
	var re *Error
	if errors.As(err, &re) && re.RetryAfter > 0 {
		return re.RetryAfter, re.RetryAfter <= p.RetryAfterCap
	}
	wait = p.Backoff << attempt
	if wait > p.MaxBackoff || wait <= 0 {
		wait = p.MaxBackoff
	}
	if wait <= 0 {
		return 0, true
	}
	return wait/2 + rand.N(wait/2+1), true
}

// Do runs fn until it succeeds, fails for good, or has been retried
// p.MaxRetries times. onRetry (may be nil) is told the wait and the error
// before each wait: the wait it is told is the wait it gets.
func (p RetryPolicy) Do(ctx context.Context, fn func(context.Context) error, onRetry func(wait time.Duration, err error)) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil || ctx.Err() != nil || !p.Transient(err) {
			return err
		}
		if attempt >= p.MaxRetries {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt+1)
		}
		wait, ok := p.Wait(attempt, err)
		if !ok {
			return fmt.Errorf("%w: the registry asks to retry in %s, longer than the %s this client waits", err, wait, p.RetryAfterCap)
		}
		if onRetry != nil {
			onRetry(wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
