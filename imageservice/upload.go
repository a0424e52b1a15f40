package imageservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Retry defaults: how often a transient registry fault is retried, the
// first wait (doubling, with jitter, up to maxBackoff) and the longest
// Retry-After honoured.
const (
	DefaultMaxRetries = 5
	defaultBackoff    = 500 * time.Millisecond
	maxBackoff        = 30 * time.Second
	retryAfterCap     = 2 * time.Minute
)

// RegistryError is an answer from a registry that ended an operation: the
// status, the registry's error code and message, and what was being done.
type RegistryError struct {
	Op         string // "upload blob sha256:… to host/repo"
	Status     int
	Code       string // e.g. DENIED, NAME_UNKNOWN, DIGEST_INVALID
	Message    string
	RetryAfter time.Duration
}

func (e *RegistryError) Error() string {
	msg := fmt.Sprintf("%s: registry answered %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		msg += " (" + e.Code
		if e.Message != "" {
			msg += ": " + e.Message
		}
		msg += ")"
	}
	return msg
}

// Unwrap maps the status to an errdefs sentinel.
func (e *RegistryError) Unwrap() error {
	switch e.Status {
	case http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case http.StatusNotFound:
		return errdefs.ErrNotFound
	case http.StatusBadRequest:
		return errdefs.ErrInvalidArgument
	case http.StatusTooManyRequests:
		return errdefs.ErrResourceExhausted
	}
	return errdefs.ErrUnavailable
}

func registryError(op string, resp *http.Response) *RegistryError {
	e := &RegistryError{Op: op, Status: resp.StatusCode}
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); err == nil && json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		e.Code, e.Message = body.Errors[0].Code, body.Errors[0].Message
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	return e
}

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		if s > 1<<31 { // no overflow: anything this long is over the cap anyway
			s = 1 << 31
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// transient reports whether err is worth another attempt: connection
// refused or reset, unexpected EOF, timeouts, 408, 429, 500, 502, 503, 504.
func transient(err error) bool {
	var re *RegistryError
	if errors.As(err, &re) {
		switch re.Status {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if errors.Is(err, errdefs.ErrDataLoss) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection") ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || (errors.As(err, &ne) && ne.Timeout()) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

// retrier runs an operation until it succeeds, fails for good, or runs out
// of attempts.
type retrier struct {
	max     int
	backoff time.Duration
	// onRetry is told before each wait.
	onRetry func(wait time.Duration, err error)
}

func (r retrier) do(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= r.max {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt+1)
		}
		wait := r.backoff << attempt
		if wait > maxBackoff || wait <= 0 {
			wait = maxBackoff
		}
		wait = wait/2 + rand.N(wait/2+1) // jitter
		var re *RegistryError
		if errors.As(err, &re) && re.RetryAfter > 0 {
			if re.RetryAfter > retryAfterCap {
				return fmt.Errorf("%w: the registry asks to retry in %s, longer than ctrpush waits (%s)", err, re.RetryAfter, retryAfterCap)
			}
			wait = re.RetryAfter
		}
		if r.onRetry != nil {
			r.onRetry(wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// request describes one HTTP request of an upload.
type request struct {
	method, url, accept, contentType string
	body                             func() (io.Reader, error) // nil: no body
	size                             int64
	auth                             bool // authorize (not for a foreign upload host)
}

// send does r with the registry host's headers, client and (when r.auth)
// authorizer, answering one auth challenge (the body is made anew). When
// the challenge cannot be answered the 401 response is returned.
func (c *blobClient) send(ctx context.Context, r request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		var body io.Reader
		if r.body != nil {
			b, err := r.body()
			if err != nil {
				return nil, err
			}
			body = b
		}
		req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
		if err != nil {
			return nil, err
		}
		if r.body != nil {
			req.ContentLength = r.size
			if r.size == 0 {
				req.Body = http.NoBody
			}
		}
		for k, v := range c.host.Header {
			if r.auth || !strings.EqualFold(k, "Authorization") {
				req.Header[k] = v
			}
		}
		if r.accept != "" {
			req.Header.Set("Accept", r.accept)
		}
		if r.contentType != "" {
			req.Header.Set("Content-Type", r.contentType)
		}
		if r.auth && c.host.Authorizer != nil {
			if err := c.authorize(ctx, req); err != nil {
				return nil, err
			}
		}
		client := c.host.Client
		if client == nil {
			client = http.DefaultClient
		}
		resp, err := client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				ue.URL = redactURL(ue.URL) // upload URLs carry signed state
			}
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && r.auth && c.host.Authorizer != nil {
			if aerr := c.addResponses(ctx, resp); aerr == nil {
				drain(resp)
				continue
			}
		}
		return resp, nil
	}
}

// location resolves an upload Location against the registry host, and
// whether it still points at that host (credentials go nowhere else).
func (c *blobClient) location(loc string) (*url.URL, bool, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return nil, false, err
	}
	if !u.IsAbs() {
		u.Scheme, u.Host = c.host.Scheme, c.host.Host
	}
	return u, strings.EqualFold(u.Host, c.host.Host) && u.Scheme == c.host.Scheme, nil
}

// uploadBlob sends one blob in one attempt: POST for an upload session,
// then PUT ?digest= with the blob as the body, hashed as it streams. A
// failed attempt cancels its session (best effort).
func (c *blobClient) uploadBlob(ctx context.Context, desc ocispec.Descriptor, ra content.ReaderAt, progress func(int64)) (err error) {
	ctx, err = docker.ContextWithRepositoryScope(ctx, c.refspec, true)
	if err != nil {
		return err
	}
	op := fmt.Sprintf("upload blob %s to %s", desc.Digest, c.refspec.Locator)
	resp, err := c.send(ctx, request{method: http.MethodPost, url: c.url("/blobs/uploads/", nil), auth: true})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		defer drain(resp)
		return registryError(op, resp)
	}
	drain(resp)
	u, sameHost, err := c.location(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("%s: bad upload location: %w", op, err)
	}
	defer func() {
		if err != nil {
			// best effort, and quick: an interrupted push must still exit
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			c.cancelUpload(cctx, u.String())
		}
	}()
	q := u.Query()
	q.Set("digest", desc.Digest.String())
	u.RawQuery = q.Encode()
	resp, err = c.send(ctx, request{
		method: http.MethodPut, url: u.String(), contentType: "application/octet-stream", size: desc.Size, auth: sameHost,
		body: func() (io.Reader, error) {
			return &hashingReader{r: io.NewSectionReader(ra, 0, desc.Size), h: desc.Digest.Algorithm().Hash(), want: desc.Digest, size: desc.Size, progress: progress}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return stored(op, resp, desc.Digest)
}

// putManifest PUTs a manifest or index by ref (a tag or its digest).
func (c *blobClient) putManifest(ctx context.Context, desc ocispec.Descriptor, body []byte, ref string) error {
	ctx, err := docker.ContextWithRepositoryScope(ctx, c.refspec, true)
	if err != nil {
		return err
	}
	op := fmt.Sprintf("put manifest %s to %s:%s", desc.Digest, c.refspec.Locator, ref)
	resp, err := c.send(ctx, request{
		method: http.MethodPut, url: c.url("/manifests/"+ref, nil), contentType: desc.MediaType, size: int64(len(body)), auth: true,
		body: func() (io.Reader, error) { return strings.NewReader(string(body)), nil },
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return stored(op, resp, desc.Digest)
}

// stored checks the answer to a PUT: a success status and, when the
// registry says which digest it stored, the one sent.
func stored(op string, resp *http.Response, want digest.Digest) error {
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK, http.StatusNoContent:
	default:
		return registryError(op, resp)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && digest.Digest(got) != want {
		return fmt.Errorf("%s: the registry stored %s, not %s: %w", op, got, want, errdefs.ErrDataLoss)
	}
	return nil
}

// hashingReader hashes a blob as it is sent and fails the read that reaches
// its end when the bytes do not match the digest, so a corrupt local copy
// is never committed by the registry.
type hashingReader struct {
	r        io.Reader
	h        hash.Hash
	want     digest.Digest
	size     int64
	n        int64
	progress func(int64)
	reported int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if h.progress != nil && h.n > h.reported && (h.n-h.reported >= 256<<10 || h.n == h.size) {
		h.reported = h.n
		h.progress(h.n)
	}
	if err == io.EOF || h.n == h.size {
		if got := digest.NewDigest(h.want.Algorithm(), h.h); h.n != h.size || got != h.want {
			return n, fmt.Errorf("blob %s in the local store is corrupt (read %d of %d bytes, hashing to %s); re-import or re-pull the image: %w", h.want, h.n, h.size, got, errdefs.ErrDataLoss)
		}
	}
	return n, err
}

// redactURL drops the query (upload session state, signatures) and any
// user info from a URL shown in an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.String()
}
