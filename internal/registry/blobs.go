package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BlobExists asks whether the repository has blob d (HEAD).
func (r *Repository) BlobExists(ctx context.Context, d digest.Digest) (bool, error) {
	return r.BlobExistsIn(ctx, r.Path, d)
}

// BlobExistsIn asks whether repository repo of the same registry has blob
// d (HEAD), with pull scope on repo.
func (r *Repository) BlobExistsIn(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	req := request{method: http.MethodHead, url: r.urlIn(repo, "/blobs/"+d.String(), nil), push: true}
	if repo != r.Path {
		req.from = repo
	}
	op := fmt.Sprintf("check blob %s in %s/%s", d, r.Registry, repo)
	resp, err := r.send(ctx, op, req)
	if err != nil {
		return false, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, decodeError(op, resp)
}

// MountResult is how a registry answered a cross-repository mount.
type MountResult int

// Mount results.
const (
	// Mounted: 201, the blob is now in the repository.
	Mounted MountResult = iota
	// SourceLacksBlob: 202, the source repository does not have the blob
	// (the upload session the registry opened instead is cancelled).
	SourceLacksBlob
	// MountRefused: 401 or 403, no permission on the source (Harbor
	// answers 401 for a project that does not exist).
	MountRefused
	// MountFailed: any other answer.
	MountFailed
)

func (m MountResult) String() string {
	switch m {
	case Mounted:
		return "mounted"
	case SourceLacksBlob:
		return "source lacks the blob"
	case MountRefused:
		return "refused"
	}
	return "failed"
}

// Mount asks the registry to mount blob desc from repository from of the
// same registry (POST …/blobs/uploads/?mount=&from=). A 201 whose
// Docker-Content-Digest names another digest is an error wrapping
// errdefs.ErrDataLoss. Answers other than 201 are results, not errors: the
// caller falls back to another source or an upload.
func (r *Repository) Mount(ctx context.Context, desc ocispec.Descriptor, from string) (MountResult, error) {
	op := fmt.Sprintf("mount blob %s into %s from %s", desc.Digest, r.Name(), from)
	resp, err := r.send(ctx, op, request{method: http.MethodPost, push: true, from: from,
		url: r.url("/blobs/uploads/", url.Values{"mount": {desc.Digest.String()}, "from": {from}})})
	if err != nil {
		return MountFailed, err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		if got := resp.Header.Get("Docker-Content-Digest"); got != "" && digest.Digest(got) != desc.Digest {
			return MountFailed, fmt.Errorf("%s: the registry mounted %s, not %s: %w", op, got, desc.Digest, errdefs.ErrDataLoss)
		}
		return Mounted, nil
	case http.StatusAccepted:
		if u, err := r.location(resp.Header.Get("Location")); err == nil {
			r.cancelUpload(ctx, u)
		}
		return SourceLacksBlob, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return MountRefused, nil
	}
	log.G(ctx).WithField("status", resp.Status).Debug("mount request answered")
	return MountFailed, nil
}

// UploadOptions are the caller's hooks into an upload.
type UploadOptions struct {
	// Progress is told the bytes sent so far (at most every 256 KiB and at
	// the end); a new attempt starts again from 0.
	Progress func(sent int64)
	// OnRetry is told the wait and the error before each retry.
	OnRetry func(wait time.Duration, err error)
}

// UploadBlob uploads blob desc, whose bytes ra holds, retrying transient
// faults by the repository's policy with a new upload session each time:
// POST for a session, then one PUT ?digest= with the whole blob, hashed as
// it streams, so corrupt bytes fail the request before the registry can
// commit them. A failed attempt cancels its session (best effort).
func (r *Repository) UploadBlob(ctx context.Context, desc ocispec.Descriptor, ra io.ReaderAt, o UploadOptions) error {
	return r.retrying(ctx, o.OnRetry, func(ctx context.Context) error {
		return r.uploadOnce(ctx, desc, ra, o.Progress)
	})
}

func (r *Repository) uploadOnce(ctx context.Context, desc ocispec.Descriptor, ra io.ReaderAt, progress func(int64)) (err error) {
	op := fmt.Sprintf("upload blob %s to %s", desc.Digest, r.Name())
	resp, err := r.send(ctx, op, request{method: http.MethodPost, url: r.url("/blobs/uploads/", nil), push: true})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		defer drain(resp)
		return decodeError(op, resp)
	}
	drain(resp)
	u, err := r.location(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer func() {
		if err != nil {
			r.cancelUpload(ctx, u)
		}
	}()
	q := u.Query()
	q.Set("digest", desc.Digest.String())
	u.RawQuery = q.Encode()
	resp, err = r.send(ctx, op, request{
		method: http.MethodPut, url: u.String(), size: desc.Size, push: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}},
		body: func() (io.Reader, error) {
			return &progressReader{r: VerifyingReader(io.NewSectionReader(ra, 0, desc.Size), desc.Digest, desc.Size), size: desc.Size, progress: progress}, nil
		},
	})
	if err != nil {
		return err
	}
	return stored(op, resp, desc.Digest)
}

// cancelUpload deletes an upload session (best effort, and quick: an
// interrupted push must still exit).
func (r *Repository) cancelUpload(ctx context.Context, u *url.URL) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if resp, err := r.send(ctx, "cancel upload", request{method: http.MethodDelete, url: u.String(), push: true}); err == nil {
		drain(resp)
	}
}

// stored checks the answer to a PUT: a success status and, when the
// registry says which digest it stored, the one sent.
func stored(op string, resp *http.Response, want digest.Digest) error {
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK, http.StatusNoContent:
	default:
		return decodeError(op, resp)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && digest.Digest(got) != want {
		return fmt.Errorf("%s: the registry stored %s, not %s: %w", op, got, want, errdefs.ErrDataLoss)
	}
	return nil
}

// progressReader reports bytes read at most every 256 KiB and at the end.
type progressReader struct {
	r        io.Reader
	size     int64
	n        int64
	reported int64
	progress func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.progress != nil && p.n > p.reported && (p.n-p.reported >= 256<<10 || p.n == p.size) {
		p.reported = p.n
		p.progress(p.n)
	}
	if err != nil && err != io.EOF {
		err = &BodyError{err}
	}
	return n, err
}
