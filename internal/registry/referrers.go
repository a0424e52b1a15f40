package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// What a registry showed of the OCI referrers API.
const (
	referrersUnknown int32 = iota
	referrersServed        // GET /v2/<name>/referrers/<digest> answers, or a PUT said OCI-Subject
	referrersAbsent        // the API answered 404: the tag schema stands in for it
)

// maxIndexSize bounds a referrers list or tag-schema index read.
const maxIndexSize = 4 << 20

// ReferrersTag is the tag of the referrers tag schema for subject
// ("sha256-<hex>"), which registries without the referrers API use.
func ReferrersTag(subject digest.Digest) string {
	return subject.Algorithm().String() + "-" + subject.Encoded()
}

// referrersAnswer is one answer of the referrers API.
type referrersAnswer struct {
	served      bool // the API answered with a list
	nameUnknown bool // a 404 for the repository, not for the API
	entries     []ocispec.Descriptor
}

// noReferrersAPI lists the statuses other than 404 that registries
// without the referrers API answer it with; each means the tag schema, as
// a 404 does (OCI distribution spec 1.1 says 404): 400 (a route the
// registry does not parse), 405 (a path it knows for other methods), 406
// (Artifactory) and 501.
var noReferrersAPI = map[int]bool{
	http.StatusBadRequest:       true,
	http.StatusMethodNotAllowed: true,
	http.StatusNotAcceptable:    true,
	http.StatusNotImplemented:   true,
}

// askReferrers sends GET /v2/<name>/referrers/<subject>. A list (an OCI
// index) answers. A 404, a status of noReferrersAPI or a 200 that is no
// index (a login page a registry redirected to: Google Artifact Registry)
// means the registry has no referrers API; anything else (401, 403, 5xx
// after the retries) is an error.
func (r *Repository) askReferrers(ctx context.Context, subject digest.Digest, push bool) (referrersAnswer, error) {
	op := fmt.Sprintf("list referrers of %s in %s", subject, r.Name())
	var ans referrersAnswer
	err := r.retrying(ctx, nil, func(ctx context.Context) error {
		ans = referrersAnswer{}
		resp, err := r.send(ctx, op, request{method: http.MethodGet, url: r.url("/referrers/"+subject.String(), nil), push: push,
			header: http.Header{"Accept": {ocispec.MediaTypeImageIndex}}})
		if err != nil {
			return err
		}
		defer drain(resp)
		switch {
		case resp.StatusCode == http.StatusOK:
		case resp.StatusCode == http.StatusNotFound:
			// A repository the registry does not know says nothing of
			// the API (go-containerregistry answers NAME_UNKNOWN).
			ans = referrersAnswer{nameUnknown: decodeError(op, resp).Code == "NAME_UNKNOWN"}
			return nil
		case noReferrersAPI[resp.StatusCode]:
			log.G(ctx).WithField("status", resp.StatusCode).Debugf("%s: no referrers API, the tag schema stands in", op)
			return nil
		default:
			return decodeError(op, resp)
		}
		mt := mediaTypeOf(resp.Header.Get("Content-Type"))
		switch mt {
		case ocispec.MediaTypeImageIndex:
			idx, err := readIndex(op, resp)
			if err != nil {
				return err
			}
			ans = referrersAnswer{served: true, entries: idx.Manifests}
		case "application/json":
			// Harbor before 2.10 lists referrers as application/json:
			// an index there is the API, anything else is not.
			idx, err := readIndex(op, resp)
			if err == nil && (idx.MediaType == ocispec.MediaTypeImageIndex || idx.Manifests != nil) {
				ans = referrersAnswer{served: true, entries: idx.Manifests}
			}
		default:
			log.G(ctx).WithField("content-type", mt).Debugf("%s: a 200 that is no index: no referrers API", op)
		}
		return nil
	})
	if err == nil {
		if ans.served {
			r.referrersAPI.Store(referrersServed)
		} else if !ans.nameUnknown {
			r.referrersAPI.CompareAndSwap(referrersUnknown, referrersAbsent)
		}
	}
	return ans, err
}

// mediaTypeOf is a Content-Type without its parameters.
func mediaTypeOf(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

func readIndex(op string, resp *http.Response) (ocispec.Index, error) {
	var idx ocispec.Index
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxIndexSize+1))
	if err != nil {
		return idx, readError(op, err)
	}
	if len(b) > maxIndexSize {
		return idx, fmt.Errorf("%s: index larger than 4 MiB: %w", op, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("%s: not an index: %v: %w", op, err, errdefs.ErrInvalidArgument)
	}
	return idx, nil
}

// ServesReferrers reports whether the registry keeps referrers itself (the
// referrers API): a manifest PUT answered OCI-Subject, or the API answers
// for subject. When it does not, a client maintains the tag schema.
func (r *Repository) ServesReferrers(ctx context.Context, subject digest.Digest) (bool, error) {
	switch r.referrersAPI.Load() {
	case referrersServed:
		return true, nil
	case referrersAbsent:
		return false, nil
	}
	ans, err := r.askReferrers(ctx, subject, true)
	return ans.served, err
}

// ReferrersAPIKnown reports whether the registry has said whether it has
// the referrers API: a manifest PUT answered OCI-Subject, or the API was
// asked in a repository the registry knows. A NAME_UNKNOWN 404 (a
// repository that does not exist yet) says nothing: go-containerregistry's
// registry, which has the API, answers it, and so may a registry without
// the API that checks the name first.
func (r *Repository) ReferrersAPIKnown() bool {
	return r.referrersAPI.Load() != referrersUnknown
}

// Referrers lists the manifests whose subject is subject: from the
// referrers API, else from the tag schema's index (none when the tag is
// absent). Filtering by artifact type is the caller's: registries may
// ignore the API's filter.
func (r *Repository) Referrers(ctx context.Context, subject digest.Digest) ([]ocispec.Descriptor, error) {
	if r.referrersAPI.Load() != referrersAbsent {
		ans, err := r.askReferrers(ctx, subject, false)
		if err != nil {
			return nil, err
		}
		if ans.served {
			return ans.entries, nil
		}
	}
	ti, err := r.tagIndex(ctx, subject, false)
	if err != nil {
		return nil, err
	}
	return ti.Index.Manifests, nil
}

// TagIndex is what the tag schema's tag of a subject holds.
type TagIndex struct {
	// Exists: the tag holds a referrers index (Index, Descriptor).
	Exists     bool
	Index      ocispec.Index
	Descriptor ocispec.Descriptor
	// SubjectItself: the registry answered the tag with the subject's own
	// manifest (GitLab resolves a digest-like tag as the digest): there is
	// no referrers index under it.
	SubjectItself bool
}

// NotReferrersIndexError says the tag-schema tag of a subject holds
// something other than a referrers index, which a push will not replace.
type NotReferrersIndexError struct {
	Repository, Tag string
	Digest          digest.Digest
	MediaType       string
}

func (e *NotReferrersIndexError) Error() string {
	return fmt.Sprintf("tag %s of %s holds %s (%s), not a referrers index; it is left as it is", e.Tag, e.Repository, e.Digest, e.MediaType)
}

// Unwrap lets errdefs.IsFailedPrecondition hold.
func (e *NotReferrersIndexError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// ReferrersTagIndex reads the tag schema's index of subject for a push.
// An absent tag is no index; the subject's own manifest under the tag
// (GitLab) is no index either; any other manifest is a
// *NotReferrersIndexError.
func (r *Repository) ReferrersTagIndex(ctx context.Context, subject digest.Digest) (TagIndex, error) {
	return r.tagIndex(ctx, subject, true)
}

func (r *Repository) tagIndex(ctx context.Context, subject digest.Digest, push bool) (TagIndex, error) {
	tag := ReferrersTag(subject)
	op := fmt.Sprintf("read referrers index %s:%s", r.Name(), tag)
	var ti TagIndex
	err := r.retrying(ctx, nil, func(ctx context.Context) error {
		ti = TagIndex{}
		resp, err := r.send(ctx, op, request{method: http.MethodGet, url: r.url("/manifests/"+tag, nil), push: push,
			header: http.Header{"Accept": {ocispec.MediaTypeImageIndex + ", " + manifestAccept}}})
		if err != nil {
			return err
		}
		defer drain(resp)
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusNotFound:
			return nil
		default:
			return decodeError(op, resp)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxIndexSize+1))
		if err != nil {
			return readError(op, err)
		}
		if len(b) > maxIndexSize {
			return fmt.Errorf("%s: larger than 4 MiB: %w", op, errdefs.ErrInvalidArgument)
		}
		d := digest.FromBytes(b)
		if d == subject {
			ti.SubjectItself = true
			return nil
		}
		mt := mediaTypeOf(resp.Header.Get("Content-Type"))
		var idx ocispec.Index
		jerr := json.Unmarshal(b, &idx)
		if idx.MediaType != "" {
			mt = idx.MediaType
		}
		if jerr != nil || mt != ocispec.MediaTypeImageIndex || idx.Subject != nil {
			return &NotReferrersIndexError{Repository: r.Name(), Tag: tag, Digest: d, MediaType: mt}
		}
		for _, m := range idx.Manifests {
			if m.Digest.Validate() != nil || m.Platform != nil {
				// A platform index someone tagged like this, not a
				// list of referrers.
				return &NotReferrersIndexError{Repository: r.Name(), Tag: tag, Digest: d, MediaType: mt}
			}
		}
		ti = TagIndex{Exists: true, Index: idx, Descriptor: ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}}
		return nil
	})
	return ti, err
}
