package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/verify"
)

// manifestAccept is what a resolve accepts: every manifest and index type.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	images.MediaTypeDockerSchema2ManifestList, images.MediaTypeDockerSchema2Manifest, "*/*",
}, ", ")

// ManifestDigest returns the digest the repository has under ref (a tag or
// a digest), or "" when it has none (any answer but 200).
func (r *Repository) ManifestDigest(ctx context.Context, ref, mediaType string) (digest.Digest, error) {
	accept := manifestAccept
	if mediaType != "" {
		accept = mediaType + ", " + manifestAccept
	}
	resp, err := r.send(ctx, fmt.Sprintf("check manifest %s:%s", r.Name(), ref), request{method: http.MethodHead,
		url: r.url("/manifests/"+ref, nil), push: true, header: http.Header{"Accept": {accept}}})
	if err != nil {
		return "", err
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", nil
	}
	return digest.Digest(resp.Header.Get("Docker-Content-Digest")), nil
}

// RepositoryUnknown says whether the registry states that the repository
// does not exist (tags/list answers 404 NAME_UNKNOWN). Any other answer,
// or none, means it may exist.
func (r *Repository) RepositoryUnknown(ctx context.Context) bool {
	op := "list tags of " + r.Name()
	resp, err := r.send(ctx, op, request{method: http.MethodGet, url: r.url("/tags/list", url.Values{"n": {"1"}}), push: true})
	if err != nil {
		return false
	}
	defer drain(resp)
	return resp.StatusCode == http.StatusNotFound && decodeError(op, resp).Code == "NAME_UNKNOWN"
}

// PutManifest PUTs manifest or index desc, whose bytes are body, under ref
// (a tag, or its digest), retrying transient faults.
func (r *Repository) PutManifest(ctx context.Context, desc ocispec.Descriptor, body []byte, ref string, onRetry func(time.Duration, error)) error {
	op := fmt.Sprintf("put manifest %s to %s:%s", desc.Digest, r.Name(), ref)
	if err := verify.Bytes(body, desc.Digest, desc.Size); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return r.retrying(ctx, onRetry, func(ctx context.Context) error {
		resp, err := r.send(ctx, op, request{
			method: http.MethodPut, url: r.url("/manifests/"+ref, nil), size: int64(len(body)), push: true,
			header: http.Header{"Content-Type": {desc.MediaType}},
			body:   func() (io.Reader, error) { return bytes.NewReader(body), nil },
		})
		if err != nil {
			return err
		}
		if resp.Header.Get("OCI-Subject") != "" {
			// The registry took the subject into its referrers API.
			r.referrersAPI.Store(referrersServed)
		}
		return foreignLayersRefused(stored(op, resp, desc.Digest), desc.Digest, body)
	})
}

// Resolve returns the descriptor of what ref (a tag or a digest) names,
// retrying transient faults: HEAD, or GET when the registry does not say
// the digest on HEAD.
func (r *Repository) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	desc, _, err := r.resolve(ctx, ref, http.MethodHead, http.MethodGet)
	return desc, err
}

// ResolveBody returns the descriptor of what ref names and its bytes,
// with one GET (a pull needs the bytes: HEAD then GET would take two
// round trips), retrying transient faults. The bytes are checked against
// the digest the registry says, and capped (MaxManifestSize).
func (r *Repository) ResolveBody(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error) {
	return r.resolve(ctx, ref, http.MethodGet)
}

func (r *Repository) resolve(ctx context.Context, ref string, methods ...string) (ocispec.Descriptor, []byte, error) {
	op := fmt.Sprintf("resolve %s:%s", r.Name(), ref)
	var desc ocispec.Descriptor
	var body []byte
	err := r.retrying(ctx, nil, func(ctx context.Context) error {
		for _, method := range methods {
			resp, err := r.send(ctx, op, request{method: method, url: r.url("/manifests/"+ref, nil),
				header: http.Header{"Accept": {manifestAccept}}})
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				defer drain(resp)
				return decodeError(op, resp)
			}
			mt := resp.Header.Get("Content-Type")
			if i := strings.IndexByte(mt, ';'); i >= 0 {
				mt = strings.TrimSpace(mt[:i])
			}
			d := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
			if resp.ContentLength > MaxManifestSize {
				drain(resp)
				return fmt.Errorf("%s: %w", op, &TooLargeError{What: "manifest", Name: r.Name() + refSep(ref) + ref, Size: resp.ContentLength, Cap: MaxManifestSize})
			}
			if method == http.MethodHead {
				drain(resp)
				if d.Validate() != nil || resp.ContentLength < 0 {
					continue // ask again with GET
				}
				desc = ocispec.Descriptor{MediaType: mt, Digest: d, Size: resp.ContentLength}
				return nil
			}
			b, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
			resp.Body.Close()
			if err != nil {
				return readError(op, err)
			}
			if len(b) > MaxManifestSize {
				return fmt.Errorf("%s: %w", op, &TooLargeError{What: "manifest", Name: r.Name() + refSep(ref) + ref, Size: -1, Cap: MaxManifestSize})
			}
			if d.Validate() != nil {
				d = digest.FromBytes(b)
			} else if err := verify.Bytes(b, d, int64(len(b))); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			desc, body = ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}, b
			return nil
		}
		return nil
	})
	return desc, body, err
}

// Fetch opens the bytes of desc (a manifest, index or blob), retrying
// transient faults until the answer starts. The caller verifies what it
// reads (content.Copy does). A manifest, index or image config larger
// than its cap (MaxManifestSize, MaxConfigSize) is refused by its
// descriptor, by the answer's Content-Length, or as it streams; no answer
// streams more bytes than the descriptor says (a *TooLargeError).
func (r *Repository) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	kind := "/blobs/"
	if images.IsManifestType(desc.MediaType) || images.IsIndexType(desc.MediaType) {
		kind = "/manifests/"
	}
	op := fmt.Sprintf("fetch %s from %s", desc.Digest, r.Name())
	what, limit := capOf(desc.MediaType)
	name := r.Name() + "@" + desc.Digest.String()
	if limit > 0 && desc.Size > limit {
		return nil, fmt.Errorf("%s: %w", op, &TooLargeError{What: what, Name: name, Size: desc.Size, Cap: limit})
	}
	if desc.Size > 0 {
		// More than the descriptor says is never right either.
		what, limit = "blob", desc.Size
		if w, _ := capOf(desc.MediaType); w != "" {
			what = w
		}
	}
	var body io.ReadCloser
	err := r.retrying(ctx, nil, func(ctx context.Context) error {
		req := request{method: http.MethodGet, url: r.url(kind+desc.Digest.String(), nil)}
		if kind == "/manifests/" {
			req.header = http.Header{"Accept": {desc.MediaType + ", " + manifestAccept}}
		}
		resp, err := r.send(ctx, op, req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			defer drain(resp)
			return decodeError(op, resp)
		}
		if limit > 0 && resp.ContentLength > limit {
			drain(resp)
			return fmt.Errorf("%s: %w", op, &TooLargeError{What: what, Name: name, Size: resp.ContentLength, Cap: limit})
		}
		body = &resumingBody{r: r, ctx: ctx, op: op, req: req, body: resp.Body}
		if limit > 0 {
			body = &cappedBody{ReadCloser: body, left: limit, err: fmt.Errorf("%s: %w", op, &TooLargeError{What: what, Name: name, Size: -1, Cap: limit})}
		}
		return nil
	})
	return body, err
}

// Caps on what a pull reads whole and keeps: distribution refuses
// manifests over 4 MiB (and containerd's resolver about the same), so no
// registry serves a larger one; image configs get the same cap, as
// containers/image gives them (its MaxConfigBodySize): the largest real
// ones are well under 1 MiB. go-containerregistry allows manifests up to
// 100 MiB, and neither it nor containerd caps configs beyond their
// descriptor's size, which the registry's own manifest sets.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 4 << 20
)

// capOf is what a media type is called in a TooLargeError and its cap;
// 0 for a blob (bounded by its descriptor only).
func capOf(mediaType string) (what string, limit int64) {
	switch {
	case images.IsIndexType(mediaType):
		return "index", MaxManifestSize
	case images.IsManifestType(mediaType):
		return "manifest", MaxManifestSize
	case images.IsConfigType(mediaType):
		return "config", MaxConfigSize
	}
	return "", 0
}

// refSep is ":" before a tag, "@" before a digest.
func refSep(ref string) string {
	if strings.Contains(ref, ":") {
		return "@"
	}
	return ":"
}

// TooLargeError is an answer larger than the client takes: a manifest,
// index or config over its cap, or any answer longer than its descriptor
// says. It is refused before or while it streams, never stored; it wraps
// errdefs.ErrInvalidArgument.
type TooLargeError struct {
	What string // "manifest", "index", "config", "blob"
	Name string // host/repo:tag or host/repo@digest
	// Size is the size the descriptor or Content-Length announced; -1
	// when the answer announced none and streamed past Cap.
	Size int64
	Cap  int64
}

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("the registry sent more than %s (%d bytes) for %s %s, the most this client takes for it", SizeString(e.Cap), e.Cap, e.What, e.Name)
	}
	return fmt.Sprintf("%s %s is %d bytes, more than the %s (%d bytes) this client takes for it", e.What, e.Name, e.Size, SizeString(e.Cap), e.Cap)
}

// Unwrap lets errdefs.IsInvalidArgument hold.
func (e *TooLargeError) Unwrap() error { return errdefs.ErrInvalidArgument }

// cappedBody fails a body that streams more than left bytes.
type cappedBody struct {
	io.ReadCloser
	left int64
	err  error
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1] // one byte past the cap tells there is more
	}
	n, err := c.ReadCloser.Read(p)
	if int64(n) > c.left {
		n, c.left = int(c.left), -1
		return n, c.err
	}
	c.left -= int64(n)
	return n, err
}

// CheckLogin asks the registry whether the credentials the hosts carry are
// good: GET /v2/, answering one auth challenge. A refusal wraps
// errdefs.ErrUnauthenticated; the error never contains the secret.
func (r *Repository) CheckLogin(ctx context.Context) error {
	op := "log in to " + r.Registry
	u := url.URL{Scheme: r.host.Scheme, Host: r.host.Host, Path: r.host.Path + "/"}
	resp, err := r.send(ctx, op, request{method: http.MethodGet, url: u.String()})
	if err != nil {
		return err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: the registry refused the credentials: %w", op, errdefs.ErrUnauthenticated)
	}
	return fmt.Errorf("%s: %s from %s", op, resp.Status, u.String())
}

// resumingBody is a fetched answer that, when a read fails for a reason
// worth another attempt (the registry stalled or reset the connection),
// asks again for the rest under the retry policy: GET with Range from the
// first byte not read (a 200 instead of a 206 is read past those bytes).
type resumingBody struct {
	r       *Repository
	ctx     context.Context
	op      string
	req     request
	body    io.ReadCloser
	read    int64
	attempt int
}

func (b *resumingBody) Read(p []byte) (int, error) {
	for {
		n, err := b.body.Read(p)
		b.read += int64(n)
		if err == nil || err == io.EOF {
			return n, err
		}
		if n > 0 {
			return n, nil // the failure shows again at the next read
		}
		if b.ctx.Err() != nil || !b.r.retry.Transient(err) {
			return 0, err
		}
		if b.attempt >= b.r.retry.MaxRetries {
			return 0, fmt.Errorf("%w (gave up after %d attempts)", err, b.attempt+1)
		}
		wait, _ := b.r.retry.Wait(b.attempt, err)
		b.attempt++
		log.G(b.ctx).WithError(err).WithField("offset", b.read).Debug("fetch broken; asking for the rest")
		t := time.NewTimer(wait)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return 0, b.ctx.Err()
		case <-t.C:
		}
		b.body.Close()
		nb, rerr := b.rest()
		if rerr != nil {
			b.body = errBody{rerr}
			continue
		}
		b.body = nb
	}
}

// rest asks for the bytes from b.read on.
func (b *resumingBody) rest() (io.ReadCloser, error) {
	req := b.req
	req.header = req.header.Clone()
	if req.header == nil {
		req.header = http.Header{}
	}
	req.header.Set("Range", fmt.Sprintf("bytes=%d-", b.read))
	resp, err := b.r.send(b.ctx, b.op, req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", b.read)) {
			drain(resp)
			return nil, fmt.Errorf("%s: the registry resumed at %q, not at byte %d", b.op, resp.Header.Get("Content-Range"), b.read)
		}
		return resp.Body, nil
	case http.StatusOK:
		if _, err := io.CopyN(io.Discard, resp.Body, b.read); err != nil {
			resp.Body.Close()
			return nil, readError(b.op, err)
		}
		return resp.Body, nil
	}
	defer drain(resp)
	return nil, decodeError(b.op, resp)
}

func (b *resumingBody) Close() error { return b.body.Close() }

// errBody is a body whose every read fails with err.
type errBody struct{ err error }

func (e errBody) Read([]byte) (int, error) { return 0, e.err }
func (e errBody) Close() error             { return nil }
