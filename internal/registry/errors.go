package registry

import (
	"bytes"
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
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Error is an answer from a registry that ended an operation: the status,
// every error the registry sent in its body, and what was being done.
// Unwrap maps the status to an errdefs sentinel (401 ErrUnauthenticated,
// 403 ErrPermissionDenied, 404 ErrNotFound, 400 ErrInvalidArgument, 429
// ErrResourceExhausted, anything else ErrUnavailable).
type Error struct {
	Op     string // "upload blob sha256:… to host/repo"
	Status int
	// Code and Message are those of the first error of the body.
	Code    string // e.g. DENIED, NAME_UNKNOWN, DIGEST_INVALID
	Message string
	// Errors is every error of the body, in the registry's order (the
	// first is Code and Message).
	Errors     []ErrorEntry
	RetryAfter time.Duration // from the Retry-After header; 0 when absent
}

// ErrorEntry is one entry of a registry's {"errors":[…]} body.
type ErrorEntry struct {
	Code    string
	Message string
	// Detail is the entry's detail: the text of a JSON string, else its
	// JSON ("" when absent).
	Detail string
}

func (e ErrorEntry) String() string {
	s := e.Code
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Detail != "" && e.Code != "UNAUTHORIZED" {
		// An UNAUTHORIZED detail is the access the request needed
		// (distribution: [{"Type":"repository",…}]): noise beside the
		// log-in hint.
		s += " [" + e.Detail + "]"
	}
	return s
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: registry answered %d %s", e.Op, e.Status, http.StatusText(e.Status))
	entries := e.Errors
	if len(entries) == 0 && e.Code != "" {
		entries = []ErrorEntry{{Code: e.Code, Message: e.Message}}
	}
	if len(entries) > 0 {
		parts := make([]string, len(entries))
		for i, en := range entries {
			parts[i] = en.String()
		}
		msg += " (" + strings.Join(parts, "; ") + ")"
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

// refusalCodes are the distribution spec's error codes that say what was
// sent is wrong (a manifest, a digest, a size, a name or tag, a blob it
// names): sending it again cannot help, whatever the status (distribution
// answers 500 when one of them comes with an error of its own).
var refusalCodes = map[string]bool{
	"MANIFEST_INVALID": true, "MANIFEST_BLOB_UNKNOWN": true, "MANIFEST_UNVERIFIED": true,
	"BLOB_UNKNOWN": true, "DIGEST_INVALID": true, "SIZE_INVALID": true,
	"NAME_INVALID": true, "TAG_INVALID": true,
}

// Refusal reports whether the registry named, in any error of its answer,
// a fault in what was sent (MANIFEST_INVALID, MANIFEST_BLOB_UNKNOWN,
// BLOB_UNKNOWN, DIGEST_INVALID, SIZE_INVALID, NAME_INVALID, TAG_INVALID,
// MANIFEST_UNVERIFIED): a permanent refusal, even with a 5xx status.
func (e *Error) Refusal() bool {
	if refusalCodes[e.Code] {
		return true
	}
	for _, en := range e.Errors {
		if refusalCodes[en.Code] {
			return true
		}
	}
	return false
}

// decodeError reads a registry's error answer: every entry of the
// distribution spec's {"errors":[{"code","message","detail"}]} body, when
// there is one, and Retry-After. It consumes at most 64 KiB of the body.
func decodeError(op string, resp *http.Response) *Error {
	e := &Error{Op: op, Status: resp.StatusCode}
	var body struct {
		Errors []struct {
			Code, Message string
			Detail        json.RawMessage
		} `json:"errors"`
	}
	if b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); err == nil && json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		e.Code, e.Message = body.Errors[0].Code, body.Errors[0].Message
		for _, be := range body.Errors {
			e.Errors = append(e.Errors, ErrorEntry{Code: be.Code, Message: be.Message, Detail: detailText(be.Detail)})
		}
	}
	e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"))
	return e
}

// detailText is an error's detail as text: a JSON string unquoted, null
// or nothing as "", anything else as its compact JSON.
func detailText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return buf.String()
	}
	return string(raw)
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
// mismatched certificate, a host name that does not resolve, a redirect
// that cannot be followed, or a local error (a corrupt blob, a failing read of the bytes to send).
func (e *TransportError) Permanent() bool {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dns *net.DNSError
	var local *BodyError
	var redirect *RedirectError
	return errors.As(e.Err, &redirect) || errors.As(e.Err, &unknownCA) || errors.As(e.Err, &verify) || errors.As(e.Err, &hostname) ||
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

// ForeignLayersError is a manifest the registry refused over layers that
// the manifest names by URL (non-distributable, "foreign" layers, such as
// Windows base layers): its answer names them as unknown blobs, because it
// does not accept their URLs (distribution checks them against its
// validation.manifests.urls setting and by default accepts none) or wants
// the blobs themselves.
type ForeignLayersError struct {
	Manifest digest.Digest
	// Layers are the refused layers, with their URLs.
	Layers []ocispec.Descriptor
	// Err is the registry's answer, every error it sent included.
	Err *Error
}

func (e *ForeignLayersError) Error() string {
	var ls []string
	for _, l := range e.Layers {
		ls = append(ls, fmt.Sprintf("%s (%s)", l.Digest, strings.Join(l.URLs, ", ")))
	}
	return fmt.Sprintf("%v: the registry refuses manifest %s over the non-distributable layer(s) it names by URL: %s", e.Err, e.Manifest, strings.Join(ls, ", "))
}

// Unwrap returns the registry's answer.
func (e *ForeignLayersError) Unwrap() error { return e.Err }

// foreignLayersRefused returns a *ForeignLayersError when err is the
// registry refusing manifest body (digest d) and its answer names, as an
// unknown blob, a layer the manifest gives URLs for; else err.
func foreignLayersRefused(err error, d digest.Digest, body []byte) error {
	var re *Error
	if !errors.As(err, &re) || !re.Refusal() {
		return err
	}
	var m struct {
		Layers []ocispec.Descriptor `json:"layers"`
	}
	if json.Unmarshal(body, &m) != nil {
		return err
	}
	fe := &ForeignLayersError{Manifest: d, Err: re}
	for _, l := range m.Layers {
		if len(l.URLs) == 0 {
			continue
		}
		for _, en := range re.Errors {
			if (en.Code == "MANIFEST_BLOB_UNKNOWN" || en.Code == "BLOB_UNKNOWN") && strings.Contains(en.Detail, l.Digest.String()) {
				fe.Layers = append(fe.Layers, l)
				break
			}
		}
	}
	if len(fe.Layers) == 0 {
		return err
	}
	return fe
}

// RedirectError is a redirect the client does not follow: to a scheme
// other than http and https (ftp://…), or one too many.
type RedirectError struct {
	Method string
	// From is the request redirected, To where the registry sent it
	// (both without query or user info).
	From, To string
	Reason   string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("the registry redirected %s %s to %s: %s", e.Method, e.From, e.To, e.Reason)
}

// finalError is an error the retry policy must not retry, whatever it
// wraps.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }

// Unwrap returns the error.
func (e *finalError) Unwrap() error { return e.err }
