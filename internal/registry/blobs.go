package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/verify"
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
	// (or the registry does not mount), and the registry opened an upload
	// session instead.
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
//
// With SourceLacksBlob comes, when the answer named one, the upload
// session the registry opened instead, as the OCI distribution spec lets
// a client use it: pass it in UploadOptions.Session (the upload saves the
// POST that would open one, and the DELETE of this one), or Cancel it.
func (r *Repository) Mount(ctx context.Context, desc ocispec.Descriptor, from string) (MountResult, *Upload, error) {
	op := fmt.Sprintf("mount blob %s into %s from %s", desc.Digest, r.Name(), from)
	resp, err := r.send(ctx, op, request{method: http.MethodPost, push: true, from: from, commit: true,
		url: r.url("/blobs/uploads/", url.Values{"mount": {desc.Digest.String()}, "from": {from}})})
	if err != nil {
		return MountFailed, nil, err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		if got := resp.Header.Get("Docker-Content-Digest"); got != "" && digest.Digest(got) != desc.Digest {
			return MountFailed, nil, fmt.Errorf("%s: the registry mounted %s, not %s: %w", op, got, desc.Digest, errdefs.ErrDataLoss)
		}
		return Mounted, nil, nil
	case http.StatusAccepted:
		s, err := r.sessionOf(resp, desc)
		if err != nil {
			return SourceLacksBlob, nil, nil // no usable session: the upload opens its own
		}
		s.fresh = true
		return SourceLacksBlob, &Upload{r: r, desc: desc, s: s}, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return MountRefused, nil, nil
	}
	log.G(ctx).WithField("status", resp.Status).Debug("mount request answered")
	return MountFailed, nil, nil
}

// UploadOptions are the caller's hooks into an upload.
type UploadOptions struct {
	// Progress is told the bytes the registry holds so far (at most every
	// 256 KiB and at the end); a resumed upload goes on from where the
	// registry stands, a new session starts again from 0.
	Progress func(sent int64)
	// OnRetry is told the wait and the error before each retry.
	OnRetry func(wait time.Duration, err error)
	// Via is told how the blob travels when that is not the usual single
	// PUT: "one request", "8 chunks of 8MiB", "resumed at 36MiB", "one
	// PUT: the registry refuses chunks".
	Via func(how string)
	// Session is an upload session a mount answered 202 opened for this
	// blob: the upload starts with it instead of a POST.
	Session *Upload
	// ChunkSize > 0 sends the blob in PATCH requests of at most this many
	// bytes. 0: one PUT with the whole blob, switching to chunks (for the
	// rest of the push to this repository) when the registry or a proxy
	// refuses a body as too large.
	ChunkSize int64
}

// Chunk sizes: the first tried after a body is refused as too large, and
// the smallest tried (nginx's default body limit is 1 MiB).
const (
	DefaultChunkSize = 8 << 20
	MinChunkSize     = 256 << 10
)

// Single-request uploads (POST …/blobs/uploads/?digest= with the blob):
// one round trip instead of two where the registry takes them
// (go-containerregistry's does; distribution answers 202 and opens a
// session instead). The first blob of at most singlePOSTProbe bytes asks;
// once taken, blobs up to singlePOSTMax go that way (larger ones keep a
// session, which can be resumed).
const (
	singlePOSTUnknown int32 = iota
	singlePOSTProbing
	singlePOSTTaken
	singlePOSTRefused

	singlePOSTProbe = 64 << 10
	singlePOSTMax   = 16 << 20
)

// session is an upload session that outlives a failed attempt, so the
// next one resumes it.
type session struct {
	url *url.URL
	// acked is the bytes the registry has confirmed; hashed ≤ acked are
	// the bytes the verifier has seen.
	acked  int64
	v      *verify.Verifier
	minLen int64 // OCI-Chunk-Min-Length, 0 when not advertised
	// fresh: opened and never used, so there is nothing to ask the
	// registry about before the first bytes.
	fresh bool
	// lost is the offset and size of the last chunk whose request got no
	// answer; the same chunk lost twice is taken for a body too large for
	// something on the way that closes the connection instead of answering.
	lostAt, lostLen int64
}

// UploadBlob uploads blob desc, whose bytes ra holds: POST for a session,
// then one PUT ?digest= with the whole blob or, when asked or when a body
// is refused as too large (413), PATCH chunks and a final PUT. When an
// attempt breaks after bytes were sent (reset, timeout, 5xx), the next one
// asks the registry where the session stands (GET → Range) and continues
// from the first byte it lacks; only a session that is gone starts anew.
// Every byte is checked against the digest (corrupt bytes are never
// committed), and transient faults are retried by the repository's policy.
// A session left when the upload fails for good is cancelled (best effort).
func (r *Repository) UploadBlob(ctx context.Context, desc ocispec.Descriptor, ra io.ReaderAt, o UploadOptions) (err error) {
	var sess *session
	if o.Session != nil && o.Session.r == r && o.Session.desc.Digest == desc.Digest {
		sess = o.Session.s
	}
	defer func() {
		if err != nil && sess != nil {
			r.cancelUpload(ctx, sess.url)
		}
	}()
	return r.retrying(ctx, o.OnRetry, func(ctx context.Context) error {
		return r.uploadAttempt(ctx, desc, ra, o, &sess)
	})
}

// chunkFor is the chunk size to use: the smaller of the caller's and what
// the registry was found to need, else 0 (monolithic; also when the
// registry refuses PATCH).
func (r *Repository) chunkFor(o UploadOptions) int64 {
	if r.noPatch.Load() {
		return 0
	}
	found := r.chunk.Load()
	if o.ChunkSize > 0 && (found == 0 || o.ChunkSize < found) {
		return o.ChunkSize
	}
	return found
}

// needSmallerChunks records that bodies of size n were refused: later
// uploads to this repository use chunks smaller than n. It reports false
// when no smaller chunk is left to try.
func (r *Repository) needSmallerChunks(n int64) bool {
	next := int64(DefaultChunkSize)
	if n <= DefaultChunkSize {
		next = n / 2
	}
	if next < MinChunkSize {
		return false
	}
	for {
		cur := r.chunk.Load()
		if cur != 0 && cur <= next {
			return true
		}
		if r.chunk.CompareAndSwap(cur, next) {
			return true
		}
	}
}

// uploadAttempt is one attempt of an upload. A session handed in (opened
// by a mount's 202) that the registry turns out not to know
// (BLOB_UPLOAD_UNKNOWN before any byte was taken: it expired, or another
// replica behind a load balancer answered) is replaced by a new one at
// once: a session handed in never makes an upload fail that would have
// worked without it.
func (r *Repository) uploadAttempt(ctx context.Context, desc ocispec.Descriptor, ra io.ReaderAt, o UploadOptions, sp **session) error {
	handed := *sp != nil && (*sp).fresh
	err := r.uploadInto(ctx, desc, ra, o, sp)
	var re *Error
	if handed && errors.As(err, &re) && re.Code == "BLOB_UPLOAD_UNKNOWN" && *sp != nil && (*sp).acked == 0 {
		log.G(ctx).WithError(err).WithField("digest", desc.Digest).Debug("the registry does not know the upload session handed in; opening another")
		*sp = nil
		err = r.uploadInto(ctx, desc, ra, o, sp)
	}
	return err
}

func (r *Repository) uploadInto(ctx context.Context, desc ocispec.Descriptor, ra io.ReaderAt, o UploadOptions, sp **session) error {
	op := fmt.Sprintf("upload blob %s to %s", desc.Digest, r.Name())
	if *sp != nil && (*sp).fresh {
		(*sp).fresh = false
	} else if *sp != nil {
		if err := r.resume(ctx, op, desc, ra, *sp); err != nil {
			*sp = nil // gone: start anew below (the error was logged)
			log.G(ctx).WithError(err).WithField("digest", desc.Digest).Debug("upload session cannot be resumed; starting a new one")
		}
	}
	if *sp == nil && r.chunkFor(o) == 0 {
		done, s, err := r.trySinglePOST(ctx, op, desc, ra, o.Progress)
		if done && err == nil {
			via(o, "one request")
		}
		if err != nil || done {
			return err
		}
		*sp = s // refused: the 202 opened a session
	}
	if *sp == nil {
		s, err := r.startUpload(ctx, op, desc)
		if err != nil {
			return err
		}
		*sp = s
	}
	sess := *sp
	report(o.Progress, sess.acked, desc.Size)
	if sess.acked > 0 {
		via(o, "resumed at "+SizeString(sess.acked))
	}
	if r.chunkFor(o) == 0 && sess.acked == 0 {
		err := r.putWhole(ctx, op, desc, ra, sess, o.Progress)
		var re *Error
		if !errors.As(err, &re) || re.Status != http.StatusRequestEntityTooLarge {
			if err == nil {
				*sp = nil
			}
			return err
		}
		// Refused as too large: chunks from now on, in a new session (the
		// refusal may have come from a proxy, leaving the session as it was).
		log.G(ctx).WithField("digest", desc.Digest).Debug("the registry refused the whole blob as too large; uploading in chunks")
		if !r.needSmallerChunks(desc.Size) {
			return err
		}
		r.cancelUpload(ctx, sess.url)
		if *sp, err = r.startUpload(ctx, op, desc); err != nil {
			return err
		}
		sess = *sp
	}
	if err := r.patchChunks(ctx, op, desc, ra, sess, o); err != nil {
		if !errors.Is(err, errPatchRefused) || sess.acked > 0 {
			return err
		}
		// A registry that takes whole uploads only: one PUT, now and for
		// the rest of the push.
		log.G(ctx).WithField("digest", desc.Digest).Debug("the registry refuses PATCH; uploading the blob whole")
		via(o, "one PUT: the registry refuses chunks")
		if err := r.putWhole(ctx, op, desc, ra, sess, o.Progress); err != nil {
			return err
		}
		*sp = nil
		return nil
	}
	if err := sess.v.Verify(); err != nil {
		return fmt.Errorf("%s: %w", op, err) // never committed: the session is cancelled
	}
	resp, err := r.send(ctx, op, request{method: http.MethodPut, url: sess.commitURL(desc.Digest), push: true, commit: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}},
		body:   func() (io.Reader, error) { return bytes.NewReader(nil), nil }})
	if err != nil {
		return err
	}
	if err := stored(op, resp, desc.Digest); err != nil {
		return err
	}
	*sp = nil
	return nil
}

// trySinglePOST uploads desc in the POST itself when the registry takes
// that (or is being asked, with a small blob). done reports the blob is
// stored; otherwise s is the session a 202 opened, or nil when the POST was
// not tried.
func (r *Repository) trySinglePOST(ctx context.Context, op string, desc ocispec.Descriptor, ra io.ReaderAt, progress func(int64)) (done bool, s *session, err error) {
	switch state := r.singlePOST.Load(); {
	case state == singlePOSTTaken && desc.Size <= singlePOSTMax:
	case state == singlePOSTUnknown && desc.Size <= singlePOSTProbe && r.singlePOST.CompareAndSwap(singlePOSTUnknown, singlePOSTProbing):
		// The probe's bytes count only if the registry keeps them.
		shown := progress
		progress = nil
		defer func() {
			if done && err == nil {
				report(shown, desc.Size, desc.Size)
			}
		}()
		defer func() {
			if err != nil {
				r.singlePOST.CompareAndSwap(singlePOSTProbing, singlePOSTUnknown) // ask again with another blob
			}
		}()
	default:
		return false, nil, nil
	}
	resp, err := r.send(ctx, op, request{method: http.MethodPost, url: r.url("/blobs/uploads/", url.Values{"digest": {desc.Digest.String()}}),
		size: desc.Size, push: true, commit: true, header: http.Header{"Content-Type": {"application/octet-stream"}},
		body: func() (io.Reader, error) {
			return &progressReader{r: verify.Reader(io.NewSectionReader(ra, 0, desc.Size), desc.Digest, desc.Size), size: desc.Size, progress: progress}, nil
		}})
	if err != nil {
		return false, nil, err
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		r.singlePOST.Store(singlePOSTTaken)
		return true, nil, stored(op, resp, desc.Digest)
	case http.StatusAccepted:
		defer drain(resp)
		r.singlePOST.Store(singlePOSTRefused)
		log.G(ctx).Debug("the registry does not take single-request uploads; POST then PUT")
		s, err := r.sessionOf(resp, desc)
		if err != nil {
			return false, nil, fmt.Errorf("%s: %w", op, err)
		}
		return false, s, nil
	}
	defer drain(resp)
	return false, nil, decodeError(op, resp)
}

// commitURL is the session's URL with ?digest=d: the PUT that ends it.
func (s *session) commitURL(d digest.Digest) string {
	u := *s.url
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	return u.String()
}

// Upload is an upload session the registry opened when it answered a
// mount with 202, before the caller knows whether the blob must be sent:
// pass it in UploadOptions.Session, or Cancel it.
type Upload struct {
	r    *Repository
	desc ocispec.Descriptor
	s    *session
}

// Cancel deletes the session (best effort): the blob is not sent after all.
func (u *Upload) Cancel(ctx context.Context) {
	if u != nil {
		u.r.cancelUpload(ctx, u.s.url)
	}
}

// startUpload opens an upload session.
func (r *Repository) startUpload(ctx context.Context, op string, desc ocispec.Descriptor) (*session, error) {
	resp, err := r.send(ctx, op, request{method: http.MethodPost, url: r.url("/blobs/uploads/", nil), push: true})
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusAccepted {
		return nil, decodeError(op, resp)
	}
	s, err := r.sessionOf(resp, desc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return s, nil
}

// sessionOf is the upload session for desc a 202 answer opened (its
// Location, and the smallest chunk the registry takes).
func (r *Repository) sessionOf(resp *http.Response, desc ocispec.Descriptor) (*session, error) {
	u, err := r.location(resp.Header.Get("Location"))
	if err != nil {
		return nil, err
	}
	s := &session{url: u, v: verify.New(desc.Digest, desc.Size)}
	if n, err := strconv.ParseInt(resp.Header.Get("OCI-Chunk-Min-Length"), 10, 64); err == nil && n > 0 {
		s.minLen = n
	}
	return s, nil
}

// putWhole sends the whole blob in one PUT, hashed as it streams.
func (r *Repository) putWhole(ctx context.Context, op string, desc ocispec.Descriptor, ra io.ReaderAt, sess *session, progress func(int64)) error {
	resp, err := r.send(ctx, op, request{
		method: http.MethodPut, url: sess.commitURL(desc.Digest), size: desc.Size, push: true, commit: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}},
		body: func() (io.Reader, error) {
			return &progressReader{r: verify.Reader(io.NewSectionReader(ra, 0, desc.Size), desc.Digest, desc.Size), size: desc.Size, progress: progress}, nil
		},
	})
	if err != nil {
		return err
	}
	return stored(op, resp, desc.Digest)
}

// patchChunks sends the bytes the registry lacks in PATCH chunks, each
// hashed once the registry confirms it; a chunk refused as too large is
// sent again smaller.
func (r *Repository) patchChunks(ctx context.Context, op string, desc ocispec.Descriptor, ra io.ReaderAt, sess *session, o UploadOptions) error {
	said := int64(-1)
	refusals := 0
	for sess.acked < desc.Size {
		chunk := r.chunkFor(o)
		if chunk == 0 {
			chunk = DefaultChunkSize
		}
		chunk = max(chunk, sess.minLen)
		if chunk != said {
			said = chunk
			left := desc.Size - sess.acked
			via(o, fmt.Sprintf("%d chunks of %s", (left+chunk-1)/chunk, SizeString(chunk)))
		}
		n := min(chunk, desc.Size-sess.acked)
		buf := make([]byte, n)
		if _, err := ra.ReadAt(buf, sess.acked); err != nil && err != io.EOF {
			return fmt.Errorf("%s: read the local copy: %w", op, &BodyError{err})
		}
		start := sess.acked
		resp, err := r.send(ctx, op, request{method: http.MethodPatch, url: sess.url.String(), size: n, push: true, commit: true,
			header: http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {fmt.Sprintf("%d-%d", start, start+n-1)}},
			body:   func() (io.Reader, error) { return bytes.NewReader(buf), nil }})
		if err != nil {
			var te *TransportError
			if errors.As(err, &te) {
				if sess.lostAt == start && sess.lostLen == n {
					r.needSmallerChunks(n)
				}
				sess.lostAt, sess.lostLen = start, n
			}
			return err
		}
		switch resp.StatusCode {
		case http.StatusAccepted, http.StatusNoContent, http.StatusCreated:
		case http.StatusRequestEntityTooLarge, http.StatusRequestedRangeNotSatisfiable:
			// Too large (413), or a cap on one PATCH (GHCR answers 416
			// over 4 MiB): smaller chunks, from where the registry stands.
			e := decodeError(op, resp)
			drain(resp)
			refusals++
			if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && n <= 4<<20 || refusals > 8 || !r.needSmallerChunks(n) {
				return e
			}
			if err := r.resume(ctx, op, desc, ra, sess); err != nil {
				return err
			}
			continue
		case http.StatusMethodNotAllowed, http.StatusNotImplemented:
			drain(resp)
			r.noPatch.Store(true)
			return fmt.Errorf("%s: %w", op, errPatchRefused)
		default:
			defer drain(resp)
			return decodeError(op, resp)
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			if u, err := r.location(loc); err == nil {
				sess.url = u // a new Location after every PATCH (GCR)
			}
		}
		end, ok := parseRange(resp.Header.Get("Range"))
		drain(resp)
		if !ok {
			end = start + n
		}
		if end == start+n {
			if _, err := sess.v.Write(buf); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			sess.acked = end
		} else if err := sess.advance(ra, end); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		report(o.Progress, sess.acked, desc.Size)
	}
	return nil
}

// errPatchRefused: the registry does not take PATCH (405, 501).
var errPatchRefused = errors.New("the registry refuses chunked uploads (PATCH)")

// resume asks the registry where sess stands (GET → 204 with Range) and
// moves sess there. A session the registry no longer knows is an error.
func (r *Repository) resume(ctx context.Context, op string, desc ocispec.Descriptor, ra io.ReaderAt, sess *session) error {
	resp, err := r.send(ctx, op, request{method: http.MethodGet, url: sess.url.String(), push: true})
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return decodeError(op, resp)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := r.location(loc); err == nil {
			sess.url = u
		}
	}
	end, _ := parseRange(resp.Header.Get("Range"))
	if end < sess.v.Written() {
		// The registry holds less than was hashed: hash anew from 0.
		sess.v, sess.acked = verify.New(desc.Digest, desc.Size), 0
	}
	log.G(ctx).WithFields(log.Fields{"digest": desc.Digest, "offset": end}).Debug("resuming the upload where the registry stands")
	return sess.advance(ra, end)
}

// advance hashes the bytes up to end the registry holds (re-read from the
// local copy) and records them as confirmed.
func (s *session) advance(ra io.ReaderAt, end int64) error {
	if from := s.v.Written(); end > from {
		if _, err := io.Copy(s.v, io.NewSectionReader(ra, from, end-from)); err != nil {
			return err
		}
	}
	s.acked = end
	return nil
}

// parseRange reads a Range answer "0-N" (N the last byte held) as the
// byte count N+1; "0-0" counts as nothing held, since distribution answers
// it for an empty session (a registry holding one byte then gets that
// byte again, which it accepts or refuses with 416).
func parseRange(v string) (int64, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "bytes=")
	i := strings.IndexByte(v, '-')
	if i < 0 {
		return 0, false
	}
	last, err := strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil || last < 0 {
		return 0, false
	}
	if last == 0 {
		return 0, true
	}
	return last + 1, true
}

// via tells o.Via how the blob travels.
func via(o UploadOptions, how string) {
	if o.Via != nil {
		o.Via(how)
	}
}

// SizeString writes n bytes in binary units, as flags take them ("8MiB").
func SizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dB", n)
}

// report tells progress the confirmed byte count.
func report(progress func(int64), n, size int64) {
	if progress != nil && (n > 0 || size == 0) {
		progress(n)
	}
}

// cancelUpload deletes an upload session (best effort, and quick: an
// interrupted push must still exit).
func (r *Repository) cancelUpload(ctx context.Context, u *url.URL) {
	if u == nil {
		return
	}
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
