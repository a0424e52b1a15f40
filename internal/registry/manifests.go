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
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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
	if err := VerifyBytes(body, desc.Digest, desc.Size); err != nil {
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
	op := fmt.Sprintf("resolve %s:%s", r.Name(), ref)
	var desc ocispec.Descriptor
	err := r.retrying(ctx, nil, func(ctx context.Context) error {
		for _, method := range []string{http.MethodHead, http.MethodGet} {
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
			if method == http.MethodHead {
				drain(resp)
				if d.Validate() != nil || resp.ContentLength < 0 {
					continue // ask again with GET
				}
				desc = ocispec.Descriptor{MediaType: mt, Digest: d, Size: resp.ContentLength}
				return nil
			}
			b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20+1))
			resp.Body.Close()
			if err != nil {
				return &TransportError{Op: op, Err: err}
			}
			if len(b) > 4<<20 {
				return fmt.Errorf("%s: manifest larger than 4 MiB: %w", op, errdefs.ErrInvalidArgument)
			}
			if d.Validate() != nil {
				d = digest.FromBytes(b)
			} else if err := VerifyBytes(b, d, int64(len(b))); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			desc = ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
			return nil
		}
		return nil
	})
	return desc, err
}

// Fetch opens the bytes of desc (a manifest, index or blob), retrying
// transient faults until the answer starts. The caller verifies what it
// reads (content.Copy does).
func (r *Repository) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	kind := "/blobs/"
	if images.IsManifestType(desc.MediaType) || images.IsIndexType(desc.MediaType) {
		kind = "/manifests/"
	}
	op := fmt.Sprintf("fetch %s from %s", desc.Digest, r.Name())
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
		body = resp.Body
		return nil
	})
	return body, err
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
