package registry

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// Error is an answer from a registry that ended an operation: the status,
// the registry's error code and message, and what was being done. Unwrap
// maps the status to an errdefs sentinel (401 ErrUnauthenticated, 403
// ErrPermissionDenied, 404 ErrNotFound, 400 ErrInvalidArgument, 429
// ErrResourceExhausted, anything else ErrUnavailable).
type Error struct {
	Op         string // "upload blob sha256:… to host/repo"
	Status     int
	Code       string // e.g. DENIED, NAME_UNKNOWN, DIGEST_INVALID
	Message    string
	RetryAfter time.Duration // from the Retry-After header; 0 when absent
}

func (e *Error) Error() string {
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
func (e *Error) Unwrap() error {
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

// decodeError reads a registry's error answer: the first entry of the
// distribution spec's {"errors":[{"code","message"}]} body, when there is
// one, and Retry-After. It consumes at most 64 KiB of the body.
func decodeError(op string, resp *http.Response) *Error {
	e := &Error{Op: op, Status: resp.StatusCode}
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); err == nil && json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		e.Code, e.Message = body.Errors[0].Code, body.Errors[0].Message
	}
	e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"))
	return e
}

// ParseRetryAfter reads a Retry-After value, seconds or an HTTP date; 0 when
// absent, malformed or in the past. It never overflows.
func ParseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		if s > 1<<31 { // anything this long is over any cap anyway
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

// TransportError is a request that got no answer from the registry: the
// connection was refused, reset or timed out, or TLS failed. Op says what
// was being done; the URL in Err carries no query (upload state, signed
// URLs) and no user info.
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *TransportError) Unwrap() error { return e.Err }

// Permanent reports whether another attempt cannot help: an untrusted or
// mismatched certificate, a host name that does not resolve, or a local
// error (a corrupt blob, a failing read of the bytes to send).
func (e *TransportError) Permanent() bool {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dns *net.DNSError
	var local *BodyError
	return errors.As(e.Err, &unknownCA) || errors.As(e.Err, &verify) || errors.As(e.Err, &hostname) ||
		errors.As(e.Err, &invalid) || (errors.As(e.Err, &dns) && dns.IsNotFound) ||
		errors.As(e.Err, &local) || errors.Is(e.Err, errdefs.ErrDataLoss)
}

// Unreachable reports whether the registry could not be connected to at
// all (nothing was sent).
func (e *TransportError) Unreachable() bool {
	var op *net.OpError
	return errors.As(e.Err, &op) && op.Op == "dial"
}

// CertificateError reports whether err is, or wraps, a failure to verify
// the registry's TLS certificate.
func CertificateError(err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var hostname x509.HostnameError
	return errors.As(err, &unknownCA) || errors.As(err, &verify) || errors.As(err, &hostname)
}

// Unreachable reports whether err is, or wraps, a request that could not
// connect to the registry.
func Unreachable(err error) bool {
	var te *TransportError
	return errors.As(err, &te) && te.Unreachable()
}

// BodyError is a failure to produce the bytes of a request body (reading
// the local copy of a blob): the registry is not at fault and another
// attempt would read the same bytes.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *BodyError) Unwrap() error { return e.Err }

// RedactURL drops the query (upload session state, signatures) and any
// user info from a URL shown in an error or a log.
func RedactURL(raw string) string {
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
