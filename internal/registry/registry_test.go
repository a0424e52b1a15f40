package registry

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/verify"
)

// fastPolicy retries like the default but waits microseconds.
var fastPolicy = RetryPolicy{MaxRetries: 3, Backoff: time.Microsecond, MaxBackoff: 10 * time.Microsecond,
	RetryAfterCap: time.Second, Statuses: DefaultRetryPolicy.Statuses}

// seen is one request a test server received.
type seen struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// server is an httptest server that records requests and answers with fn.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newServer(t *testing.T, fn http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), b})
		s.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		fn(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

func (s *server) host() string { u, _ := url.Parse(s.URL); return u.Host }

// repoOn opens team/app on s, with a configured header and a static
// Authorization, as hosts.toml and a registry token would give.
func repoOn(t *testing.T, s *server, policy RetryPolicy) *Repository {
	t.Helper()
	hosts := func(string) ([]docker.RegistryHost, error) {
		return []docker.RegistryHost{{
			Client: s.Client(), Host: s.host(), Scheme: "http", Path: "/v2",
			Capabilities: docker.HostCapabilityPush | docker.HostCapabilityPull | docker.HostCapabilityResolve,
			Header:       http.Header{"X-Api-Key": {"k3y"}, "Authorization": {"Bearer t0ken"}},
		}}, nil
	}
	r, err := NewRepository(hosts, s.host(), "team/app", ForPush, policy)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func blob(s string) (ocispec.Descriptor, []byte) {
	b := []byte(s)
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(b), Size: int64(len(b))}, b
}

func TestTransient(t *testing.T) {
	reset := &TransportError{Op: "x", Err: &url.Error{Op: "Put", URL: "u", Err: &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.ECONNRESET)}}}
	refused := &TransportError{Op: "x", Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"408", &Error{Status: 408}, true},
		{"429", &Error{Status: 429}, true},
		{"500", &Error{Status: 500}, true},
		{"502", &Error{Status: 502}, true},
		{"503 wrapped", fmt.Errorf("upload: %w", &Error{Status: 503}), true},
		{"504", &Error{Status: 504}, true},
		{"400", &Error{Status: 400}, false},
		{"401", &Error{Status: 401}, false},
		{"403", &Error{Status: 403}, false},
		{"404", &Error{Status: 404}, false},
		{"reset", reset, true},
		{"refused", refused, true},
		{"client timeout", &TransportError{Op: "x", Err: &url.Error{Op: "Get", URL: "u", Err: context.DeadlineExceeded}}, true},
		{"caller's deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{"unknown CA", &TransportError{Op: "x", Err: &url.Error{Err: x509.UnknownAuthorityError{}}}, false},
		{"no such host", &TransportError{Op: "x", Err: &net.DNSError{Err: "no such host", IsNotFound: true}}, false},
		{"corrupt body", &TransportError{Op: "x", Err: &BodyError{&verify.CorruptError{}}}, false},
		{"local read", &TransportError{Op: "x", Err: &BodyError{io.ErrClosedPipe}}, false},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), false},
		{"plain text that looks transient", errors.New("connection reset by peer"), false},
		{"nil", nil, false},
	} {
		if got := DefaultRetryPolicy.Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !refused.Unreachable() || reset.Unreachable() || !Unreachable(fmt.Errorf("w: %w", refused)) {
		t.Error("Unreachable answers wrong")
	}
}

func TestRetryWait(t *testing.T) {
	p := RetryPolicy{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, RetryAfterCap: time.Minute}
	for attempt, full := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		for range 20 {
			w, ok := p.Wait(attempt, &Error{Status: 503})
			if !ok || w < full/2 || w > full {
				t.Fatalf("attempt %d: wait %s, want within [%s, %s]", attempt, w, full/2, full)
			}
		}
	}
	if w, ok := p.Wait(0, &Error{Status: 429, RetryAfter: 7 * time.Second}); !ok || w != 7*time.Second {
		t.Fatalf("Retry-After 7s: wait %s ok=%v", w, ok)
	}
	if _, ok := p.Wait(0, &Error{Status: 429, RetryAfter: 2 * time.Minute}); ok {
		t.Fatal("a Retry-After over the cap was accepted")
	}
	if w, ok := p.Wait(62, &Error{Status: 503}); !ok || w > time.Second {
		t.Fatalf("a huge attempt count overflowed: %s", w)
	}
}

func TestRetryDo(t *testing.T) {
	ctx := context.Background()
	p := RetryPolicy{MaxRetries: 2, Backoff: 2 * time.Millisecond, MaxBackoff: 4 * time.Millisecond, Statuses: []int{503}}

	// Transient faults: tried MaxRetries+1 times; each wait announced is
	// the wait taken.
	calls := 0
	var last time.Time
	var announced []time.Duration
	err := p.Do(ctx, func(context.Context) error {
		calls++
		if len(announced) > 0 {
			if took := time.Since(last); took < announced[len(announced)-1] {
				t.Errorf("waited %s, announced %s", took, announced[len(announced)-1])
			}
		}
		return &Error{Op: "put", Status: 503}
	}, func(w time.Duration, err error) {
		announced = append(announced, w)
		last = time.Now()
	})
	if calls != 3 || len(announced) != 2 || err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") || !errdefs.IsUnavailable(err) {
		t.Fatalf("calls %d, announced %v, err %v", calls, announced, err)
	}

	// A permanent error stops at once; success stops at once.
	calls = 0
	err = p.Do(ctx, func(context.Context) error { calls++; return &Error{Status: 403} }, nil)
	if calls != 1 || !errdefs.IsPermissionDenied(err) {
		t.Fatalf("permanent: calls %d err %v", calls, err)
	}
	calls = 0
	if err := p.Do(ctx, func(context.Context) error { calls++; return nil }, nil); err != nil || calls != 1 {
		t.Fatalf("success: calls %d err %v", calls, err)
	}

	// A Retry-After over the cap fails at once, saying so.
	p.RetryAfterCap = time.Second
	err = p.Do(ctx, func(context.Context) error { return &Error{Status: 503, RetryAfter: time.Hour} }, nil)
	if err == nil || !strings.Contains(err.Error(), "asks to retry in 1h0m0s") {
		t.Fatalf("Retry-After over the cap: %v", err)
	}

	// Cancellation during a wait ends it.
	cctx, cancel := context.WithCancel(ctx)
	p.Backoff, p.MaxBackoff = time.Hour, time.Hour
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if err := p.Do(cctx, func(context.Context) error { return &Error{Status: 503} }, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		in       string
		min, max time.Duration
	}{
		{"", 0, 0}, {"3", 3 * time.Second, 3 * time.Second}, {" 10 ", 10 * time.Second, 10 * time.Second},
		{"-1", 0, 0}, {"soon", 0, 0}, {"Wed, 21 Oct 2015 07:28:00 GMT", 0, 0},
		{future, 80 * time.Second, 90 * time.Second},
		{"999999999999999999999", 0, 0}, {"99999999999", 1 << 31 * time.Second, 1 << 31 * time.Second},
	} {
		if got := ParseRetryAfter(tc.in); got < tc.min || got > tc.max {
			t.Errorf("ParseRetryAfter(%q) = %s, want within [%s, %s]", tc.in, got, tc.min, tc.max)
		}
	}
}

func TestErrorDecoding(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/team/app/blobs/uploads/":
			w.Header().Set("Retry-After", "4")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
		default:
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `not json`)
		}
	})
	r := repoOn(t, s, RetryPolicy{})
	desc, b := blob("x")
	err := r.UploadBlob(t.Context(), desc, bytes.NewReader(b), UploadOptions{})
	var re *Error
	if !errors.As(err, &re) || re.Status != 429 || re.Code != "TOOMANYREQUESTS" || re.Message != "slow down" || re.RetryAfter != 4*time.Second ||
		!errdefs.IsResourceExhausted(err) || !strings.Contains(err.Error(), desc.Digest.String()) || !strings.Contains(err.Error(), "team/app") {
		t.Fatalf("429: %#v / %v", re, err)
	}
	_, err = r.Resolve(t.Context(), "1.0")
	if !errors.As(err, &re) || re.Status != 403 || re.Code != "" || !errdefs.IsPermissionDenied(err) {
		t.Fatalf("403 without a body: %v", err)
	}
}

// A 503 on the PUT: the next attempt asks where the session stands and
// sends the blob again on the same session, not a new one.
func TestUploadResumesItsSession(t *testing.T) {
	desc, b := blob("layer bytes")
	var mu sync.Mutex
	sessions, puts := 0, 0
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost:
			sessions++
			w.Header().Set("Location", fmt.Sprintf("/v2/team/app/blobs/uploads/s%d?state=secret", sessions))
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/s1"):
			w.Header().Set("Range", "0-0")
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodGet:
			w.WriteHeader(http.StatusNotFound)
		case r.Method == http.MethodPut:
			puts++
			got, _ := io.ReadAll(r.Body)
			if puts == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if !bytes.Equal(got, b) || r.URL.Query().Get("digest") != desc.Digest.String() || r.URL.Query().Get("state") != "secret" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Docker-Content-Digest", desc.Digest.String())
			w.WriteHeader(http.StatusCreated)
		}
	})
	var retries int
	if err := repoOn(t, s, fastPolicy).UploadBlob(t.Context(), desc, bytes.NewReader(b), UploadOptions{
		OnRetry: func(time.Duration, error) { retries++ },
	}); err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, r := range s.requests() {
		methods = append(methods, r.Method+" "+r.Path)
	}
	want := "POST /v2/team/app/blobs/uploads/,PUT /v2/team/app/blobs/uploads/s1,GET /v2/team/app/blobs/uploads/s1,PUT /v2/team/app/blobs/uploads/s1"
	if strings.Join(methods, ",") != want || retries != 1 {
		t.Fatalf("requests %v, retries %d", methods, retries)
	}
}

// fakeUploads is a registry's upload API as the spec describes it:
// sessions, PATCH with Content-Range in order (416 otherwise), a new
// Location after each PATCH, GET → 204 with Range, PUT ?digest= that
// checks the bytes; optionally a body limit (413) and a connection
// dropped once mid-PATCH after some bytes, keeping what arrived.
type fakeUploads struct {
	mu        sync.Mutex
	limit     int64 // 413 for bodies over this; 0: none
	dropAt    int64 // drop the connection once when a PATCH brings the session past this; 0: never
	dropped   bool
	received  int64 // body bytes read
	patches   []int64
	sessions  map[string][]byte
	committed map[digest.Digest][]byte
	n         int
}

func (f *fakeUploads) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sessions == nil {
		f.sessions, f.committed = map[string][]byte{}, map[digest.Digest][]byte{}
	}
	id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	if f.limit > 0 && r.ContentLength > f.limit {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	switch r.Method {
	case http.MethodPost:
		f.n++
		id = fmt.Sprintf("u%d", f.n)
		f.sessions[id] = nil
		w.Header().Set("Location", "/v2/team/app/blobs/uploads/"+id)
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPatch:
		data, ok := f.sessions[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		var start, end int64
		if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "%d-%d", &start, &end); err != nil || start != int64(len(data)) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		f.patches = append(f.patches, r.ContentLength)
		if f.dropAt > 0 && !f.dropped && int64(len(data))+r.ContentLength > f.dropAt {
			f.dropped = true
			part := make([]byte, f.dropAt-int64(len(data)))
			n, _ := io.ReadFull(r.Body, part)
			f.received += int64(n)
			f.sessions[id] = append(data, part[:n]...)
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		body, _ := io.ReadAll(r.Body)
		f.received += int64(len(body))
		f.sessions[id] = append(data, body...)
		w.Header().Set("Range", fmt.Sprintf("0-%d", len(f.sessions[id])-1))
		w.Header().Set("Location", fmt.Sprintf("/v2/team/app/blobs/uploads/%s?step=%d", id, len(f.patches)))
		w.WriteHeader(http.StatusAccepted)
	case http.MethodGet:
		data, ok := f.sessions[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Range", fmt.Sprintf("0-%d", max(len(data)-1, 0)))
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		data, ok := f.sessions[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		f.received += int64(len(body))
		data = append(data, body...)
		d := digest.Digest(r.URL.Query().Get("digest"))
		if digest.FromBytes(data) != d {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		delete(f.sessions, id)
		f.committed[d] = data
		w.Header().Set("Docker-Content-Digest", d.String())
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		delete(f.sessions, id)
		w.WriteHeader(http.StatusNoContent)
	}
}

func randomBlob(n int) (ocispec.Descriptor, []byte) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(b), Size: int64(n)}, b
}

// Chunks when asked: PATCHes of at most the chunk size, in order, each to
// the Location the last one gave, then a PUT with no body.
func TestChunkedUpload(t *testing.T) {
	f := &fakeUploads{}
	s := newServer(t, f.serve)
	desc, b := randomBlob(3500)
	var progress []int64
	if err := repoOn(t, s, fastPolicy).UploadBlob(t.Context(), desc, bytes.NewReader(b), UploadOptions{ChunkSize: 1000, Progress: func(n int64) { progress = append(progress, n) }}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.committed[desc.Digest], b) || fmt.Sprint(f.patches) != "[1000 1000 1000 500]" {
		t.Fatalf("committed %d bytes in patches %v", len(f.committed[desc.Digest]), f.patches)
	}
	if fmt.Sprint(progress) != "[1000 2000 3000 3500]" {
		t.Fatalf("progress %v", progress)
	}
	var steps []string
	for _, q := range s.requests() {
		if q.Method == http.MethodPatch || q.Method == http.MethodPut {
			steps = append(steps, q.Query)
		}
	}
	if fmt.Sprint(steps) != "[ step=1 step=2 step=3 digest="+url.QueryEscape(desc.Digest.String())+"&step=4]" {
		t.Fatalf("Location not followed: %v", steps)
	}
}

// A body refused as too large (413 from a proxy with a body limit): the
// blob goes again in chunks, smaller until one is taken, and the size found
// is kept for the next blob (no 413 first).
func TestTooLargeSwitchesToChunks(t *testing.T) {
	f := &fakeUploads{limit: 300 << 10}
	s := newServer(t, f.serve)
	r := repoOn(t, s, fastPolicy)
	desc, b := randomBlob(1 << 20)
	if err := r.UploadBlob(t.Context(), desc, bytes.NewReader(b), UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.committed[desc.Digest], b) {
		t.Fatal("blob not committed")
	}
	f.mu.Lock()
	patches := fmt.Sprint(f.patches)
	f.patches = nil
	f.mu.Unlock()
	if patches != "[262144 262144 262144 262144]" {
		t.Fatalf("patches %s, want four of 256 KiB", patches)
	}
	before := len(s.requests())
	desc2, b2 := randomBlob(600 << 10)
	if err := r.UploadBlob(t.Context(), desc2, bytes.NewReader(b2), UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, q := range s.requests()[before:] {
		if q.Method == http.MethodPut && len(q.Body) > 0 {
			t.Fatalf("the second blob was tried whole (%d bytes) after the chunk size was found", len(q.Body))
		}
	}
	if fmt.Sprint(f.patches) != "[262144 262144 90112]" {
		t.Fatalf("second blob patches %v", f.patches)
	}
}

// A connection dropped in the middle of a chunk: the next attempt asks
// the registry where the session stands and continues from there, so the
// bytes sent are the blob plus less than one chunk; the digest still
// covers every byte.
func TestResumeAfterADrop(t *testing.T) {
	f := &fakeUploads{dropAt: 2500}
	s := newServer(t, f.serve)
	desc, b := randomBlob(4000)
	var progress []int64
	if err := repoOn(t, s, fastPolicy).UploadBlob(t.Context(), desc, bytes.NewReader(b), UploadOptions{ChunkSize: 1000, Progress: func(n int64) { progress = append(progress, n) }}); err != nil {
		t.Fatal(err)
	}
	if !f.dropped || !bytes.Equal(f.committed[desc.Digest], b) {
		t.Fatalf("dropped %v, committed %d bytes", f.dropped, len(f.committed[desc.Digest]))
	}
	if f.received != desc.Size {
		t.Fatalf("the registry received %d body bytes for a %d-byte blob: acknowledged bytes were sent again", f.received, desc.Size)
	}
	posts := 0
	for _, q := range s.requests() {
		if q.Method == http.MethodPost {
			posts++
		}
	}
	if posts != 1 || fmt.Sprint(progress) != "[1000 2000 2500 3500 4000]" {
		t.Fatalf("%d sessions, progress %v", posts, progress)
	}
}

func TestStoredDigestIsChecked(t *testing.T) {
	desc, b := blob("manifest")
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", digest.FromString("other").String())
		w.WriteHeader(http.StatusCreated)
	})
	err := repoOn(t, s, fastPolicy).PutManifest(t.Context(), desc, b, "1.0", nil)
	if !errdefs.IsDataLoss(err) || !strings.Contains(err.Error(), "stored") {
		t.Fatalf("a registry storing another digest: %v", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Fatalf("%d requests: data loss is not transient", n)
	}
}

func TestCredentialsStayOnTheRegistryHost(t *testing.T) {
	desc, b := blob("to a signed storage URL")
	storage := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", desc.Digest.String())
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusCreated)
			return
		}
		_, _ = w.Write(b)
	})
	reg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			w.Header().Set("Location", storage.URL+"/upload?X-Amz-Signature=abc")
			w.WriteHeader(http.StatusAccepted)
		case strings.Contains(r.URL.Path, "/blobs/"):
			http.Redirect(w, r, storage.URL+"/blob?sig=1", http.StatusTemporaryRedirect)
		}
	})
	r := repoOn(t, reg, fastPolicy)
	if err := r.UploadBlob(t.Context(), desc, bytes.NewReader(b), UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := r.Fetch(t.Context(), desc)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	for _, q := range reg.requests() {
		if q.Header.Get("Authorization") != "Bearer t0ken" || q.Header.Get("X-Api-Key") != "k3y" {
			t.Fatalf("the registry host got %s %s without its credentials: %v", q.Method, q.Path, q.Header)
		}
	}
	got := storage.requests()
	if len(got) != 2 || got[0].Method != http.MethodPut || got[1].Method != http.MethodGet {
		t.Fatalf("storage saw %+v, want the PUT and the redirected GET", got)
	}
	for _, q := range got {
		if q.Header.Get("Authorization") != "" || q.Header.Get("X-Api-Key") != "" {
			t.Fatalf("%s %s on another host carried credentials: %v", q.Method, q.Path, q.Header)
		}
	}
}

func TestCorruptBytesAreNeverCommitted(t *testing.T) {
	desc, _ := blob("the real bytes")
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			w.Header().Set("Location", "/v2/team/app/blobs/uploads/s")
			w.WriteHeader(http.StatusAccepted)
		case http.MethodPut:
			w.WriteHeader(http.StatusCreated) // would commit whatever came
		}
	})
	err := repoOn(t, s, fastPolicy).UploadBlob(t.Context(), desc, strings.NewReader("the fake bytes"), UploadOptions{})
	var ce *verify.CorruptError
	if !errors.As(err, &ce) || !errdefs.IsDataLoss(err) || ce.Digest != desc.Digest {
		t.Fatalf("corrupt upload: %v", err)
	}
	// (The blob is small: it goes in a single-request POST, or a PUT.)
	carrying := 0
	for _, q := range s.requests() {
		if len(q.Body) == int(desc.Size) {
			t.Fatalf("the registry received the whole corrupt body (%s)", q.Method)
		}
		if q.Method == http.MethodPut || q.Method == http.MethodPost && strings.Contains(q.Query, "digest=") {
			carrying++
		}
	}
	if carrying > 1 {
		t.Fatalf("%d requests carried the blob: a corrupt blob is not retried", carrying)
	}
}

func TestVerifier(t *testing.T) {
	d := digest.FromString("hello world")
	for _, tc := range []struct {
		name, data string
		size       int64
		ok         bool
	}{
		{"good", "hello world", 11, true},
		{"other bytes", "hello words", 11, false},
		{"short", "hello", 11, false},
		{"long", "hello world!", 11, false},
	} {
		_, err := io.ReadAll(verify.Reader(strings.NewReader(tc.data), d, tc.size))
		if (err == nil) != tc.ok || !tc.ok && !errdefs.IsDataLoss(err) {
			t.Errorf("%s: reader %v", tc.name, err)
		}
		if err := verify.Bytes([]byte(tc.data), d, tc.size); (err == nil) != tc.ok {
			t.Errorf("%s: bytes %v", tc.name, err)
		}
	}
	if err := verify.Bytes(nil, digest.FromBytes(nil), 0); err != nil {
		t.Errorf("empty blob: %v", err)
	}
}

func TestMountAnswers(t *testing.T) {
	desc, _ := blob("mount me")
	for _, tc := range []struct {
		status   int
		digest   string
		want     MountResult
		dataLoss bool
		session  bool // the answer's upload session comes back
	}{
		{http.StatusCreated, desc.Digest.String(), Mounted, false, false},
		{http.StatusCreated, "", Mounted, false, false},
		{http.StatusCreated, digest.FromString("lie").String(), MountFailed, true, false},
		{http.StatusAccepted, "", SourceLacksBlob, false, true},
		{http.StatusUnauthorized, "", MountRefused, false, false},
		{http.StatusForbidden, "", MountRefused, false, false},
		{http.StatusNotFound, "", MountFailed, false, false},
		{http.StatusInternalServerError, "", MountFailed, false, false},
	} {
		t.Run(fmt.Sprintf("%d%s", tc.status, map[bool]string{true: " lying"}[tc.dataLoss]), func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodDelete {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				if r.URL.Query().Get("mount") != desc.Digest.String() || r.URL.Query().Get("from") != "team/base" {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				if tc.digest != "" {
					w.Header().Set("Docker-Content-Digest", tc.digest)
				}
				w.Header().Set("Location", "/v2/team/app/blobs/uploads/opened")
				w.WriteHeader(tc.status)
			})
			got, up, err := repoOn(t, s, fastPolicy).Mount(t.Context(), desc, "team/base")
			if got != tc.want || errdefs.IsDataLoss(err) != tc.dataLoss || (err != nil) != tc.dataLoss {
				t.Fatalf("Mount = %s, %v; want %s (data loss %v)", got, err, tc.want, tc.dataLoss)
			}
			if (up != nil) != tc.session {
				t.Fatalf("Mount gave session %v; want one: %v", up, tc.session)
			}
			deletes := func() int {
				n := 0
				for _, q := range s.requests() {
					if q.Method == http.MethodDelete && q.Path == "/v2/team/app/blobs/uploads/opened" {
						n++
					}
				}
				return n
			}
			if n := deletes(); n != 0 {
				t.Fatalf("%d upload sessions cancelled by Mount itself", n)
			}
			up.Cancel(t.Context())
			if want := map[bool]int{true: 1}[tc.session]; deletes() != want {
				t.Fatalf("Cancel deleted %d sessions, want %d", deletes(), want)
			}
		})
	}
}

// A session handed to an upload (here a mount's 202) that the registry no
// longer knows — a registry of several replicas behind a load balancer
// without shared upload state answers BLOB_UPLOAD_UNKNOWN from another
// one — is replaced at once by a new session, in the same attempt; a
// session the upload opened itself is not (404 stays permanent).
func TestForgottenHandedSessionIsReplaced(t *testing.T) {
	desc, b := blob("forgotten session")
	for _, handed := range []bool{true, false} {
		t.Run(map[bool]string{true: "handed in", false: "its own"}[handed], func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPost && r.URL.Query().Get("mount") != "":
					w.Header().Set("Location", "/v2/team/app/blobs/uploads/forgotten")
					w.WriteHeader(http.StatusAccepted)
				case r.Method == http.MethodPost && handed:
					w.Header().Set("Location", "/v2/team/app/blobs/uploads/fresh")
					w.WriteHeader(http.StatusAccepted)
				case r.Method == http.MethodPost:
					w.Header().Set("Location", "/v2/team/app/blobs/uploads/forgotten")
					w.WriteHeader(http.StatusAccepted)
				case r.Method == http.MethodPut && r.URL.Path == "/v2/team/app/blobs/uploads/fresh":
					w.Header().Set("Docker-Content-Digest", desc.Digest.String())
					w.WriteHeader(http.StatusCreated)
				default:
					w.WriteHeader(http.StatusNotFound)
					fmt.Fprint(w, `{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}`)
				}
			})
			r := repoOn(t, s, fastPolicy)
			var o UploadOptions
			if handed {
				res, up, err := r.Mount(t.Context(), desc, "team/base")
				if err != nil || res != SourceLacksBlob || up == nil {
					t.Fatalf("Mount = %s, %v, %v", res, up, err)
				}
				o.Session = up
			}
			err := r.UploadBlob(t.Context(), desc, bytes.NewReader(b), o)
			var got []string
			for _, q := range s.requests() {
				if q.Method != http.MethodDelete {
					got = append(got, q.Method+" "+strings.TrimPrefix(q.Path, "/v2/team/app/blobs/uploads/"))
				}
			}
			if !handed {
				// Its own session forgotten: the registry's 404, as before.
				if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "BLOB_UPLOAD_UNKNOWN") {
					t.Fatalf("UploadBlob = %v, want the registry's BLOB_UPLOAD_UNKNOWN", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"POST ", "PUT forgotten", "POST ", "PUT fresh"}; !slices.Equal(got, want) {
				t.Fatalf("requests %q, want %q", got, want)
			}
		})
	}
}

func TestManifestDigestAndRepositoryUnknown(t *testing.T) {
	have := digest.FromString("m")
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/team/app/manifests/1.0":
			w.Header().Set("Docker-Content-Digest", have.String())
		case "/v2/team/app/tags/list":
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"NAME_UNKNOWN"}]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	r := repoOn(t, s, fastPolicy)
	if d, err := r.ManifestDigest(t.Context(), "1.0", ocispec.MediaTypeImageIndex); err != nil || d != have {
		t.Fatalf("tag 1.0: %s %v", d, err)
	}
	if d, err := r.ManifestDigest(t.Context(), "2.0", ""); err != nil || d != "" {
		t.Fatalf("absent tag: %s %v", d, err)
	}
	if !r.RepositoryUnknown(t.Context()) {
		t.Fatal("NAME_UNKNOWN not seen")
	}
	if accept := s.requests()[0].Header.Get("Accept"); !strings.HasPrefix(accept, ocispec.MediaTypeImageIndex+", ") {
		t.Fatalf("Accept %q", accept)
	}
}

func TestUnreachableRegistryIsATransportError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	hosts := RegistryHosts(HostsConfig{})
	r, err := NewRepository(hosts, addr, "team/app", ForPush, fastPolicy)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := r.BlobExists(t.Context(), digest.FromString("x"))
	var te *TransportError
	if ok || !errors.As(err, &te) || !te.Unreachable() || te.Permanent() {
		t.Fatalf("closed port: %v", err)
	}
}

func TestBasicAuthChallengeIsAnsweredOnce(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	for _, tc := range []struct {
		password string
		ok       bool
	}{{"pw", true}, {"wrong", false}} {
		hosts := RegistryHosts(HostsConfig{Credentials: func(string) (string, string, error) { return "ci", tc.password, nil }})
		before := len(s.requests())
		err := CheckLogin(t.Context(), hosts, s.host())
		if tc.ok != (err == nil) || !tc.ok && (!errors.Is(err, errdefs.ErrUnauthenticated) || strings.Contains(err.Error(), tc.password)) {
			t.Fatalf("password %q: %v", tc.password, err)
		}
		if n := len(s.requests()) - before; n != 2 {
			t.Fatalf("password %q: %d requests, want the challenge and one answer", tc.password, n)
		}
	}
}
