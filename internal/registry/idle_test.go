package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// idlePolicy retries at once and calls 200 ms without progress a stall.
var idlePolicy = RetryPolicy{MaxRetries: 3, Backoff: time.Microsecond, MaxBackoff: 10 * time.Microsecond,
	RetryAfterCap: time.Second, Statuses: DefaultRetryPolicy.Statuses, IdleTimeout: 200 * time.Millisecond}

// A registry that sends the headers of its answer, part of the body, then
// nothing: each stalled answer is cut after the idle bound and retried;
// when every answer stalls, the error names the registry, the request and
// what stalled.
func TestStalledAnswerIsCutAndRetried(t *testing.T) {
	var stalls atomic.Int32
	var stallsLeft atomic.Int32
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "40")
		if stallsLeft.Add(-1) >= 0 {
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, `{"name":"team/app",`)
			w.(http.Flusher).Flush()
			start := time.Now()
			<-r.Context().Done() // the client gave up
			if time.Since(start) >= 200*time.Millisecond {
				stalls.Add(1)
			}
			return
		}
		fmt.Fprint(w, `{"name":"team/app","tags":["a","b","c"]}`)
	})
	r := repoOn(t, s, idlePolicy)
	stallsLeft.Store(2)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a hang fails, not a bound
	defer cancel()
	tags, err := r.Tags(ctx)
	if err != nil || strings.Join(tags, ",") != "a,b,c" {
		t.Fatalf("Tags: %v %v", tags, err)
	}
	waitFor(t, func() bool { return stalls.Load() == 2 }, "two stalls cut by the client")

	stallsLeft.Store(100)
	_, err = r.Tags(ctx)
	var ie *IdleError
	if !errors.As(err, &ie) || ie.Stage != "reading the answer" || !strings.Contains(err.Error(), "list tags of "+s.host()+"/team/app") ||
		!strings.Contains(err.Error(), "GET http://"+s.host()+"/v2/team/app/tags/list") || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("every answer stalled: %v", err)
	}
}

// A registry that takes the connection and the request and never answers:
// the wait for the answer is bounded by the idle bound too (for all but
// blob commits).
func TestSilentRegistryIsCut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var requests int
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				n, _ := c.Read(buf) // the request; no answer ever
				if bytes.HasPrefix(buf[:n], []byte("HEAD ")) {
					mu.Lock()
					requests++
					mu.Unlock()
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	r, err := NewRepository(RegistryHosts(HostsConfig{}), l.Addr().String(), "team/app", ForPull, idlePolicy)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a hang fails, not a bound
	defer cancel()
	_, err = r.Resolve(ctx, "1.0")
	var ie *IdleError
	if !errors.As(err, &ie) || ie.Stage != "waiting for the answer" || !strings.Contains(err.Error(), "resolve "+l.Addr().String()+"/team/app:1.0") {
		t.Fatalf("a registry that never answers: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 4 || time.Since(start) < 4*200*time.Millisecond {
		t.Fatalf("%d requests in %s, want 4 cut after 200 ms each", requests, time.Since(start))
	}
}

// The bound is on idleness, not on the whole transfer: an upload the
// registry reads slowly, for many times the idle bound, goes through.
func TestSlowUploadIsNotCut(t *testing.T) {
	desc, b := randomBlob(1 << 20)
	var took time.Duration
	s := newRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			w.Header().Set("Location", "/v2/team/app/blobs/uploads/s1")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodPut:
			start := time.Now()
			var got bytes.Buffer
			buf := make([]byte, 64<<10)
			for {
				n, err := r.Body.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					break
				}
				time.Sleep(60 * time.Millisecond) // ~1 MiB/s
			}
			took = time.Since(start)
			if digest.FromBytes(got.Bytes()) != desc.Digest {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Docker-Content-Digest", desc.Digest.String())
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	r := repoOn(t, s, idlePolicy)
	r.singlePOST.Store(singlePOSTRefused)
	if err := r.UploadBlob(t.Context(), desc, bytes.NewReader(b), UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if took < 2*idlePolicy.IdleTimeout {
		t.Fatalf("the registry read the blob in %s: not slow enough to prove anything", took)
	}
}

// newRawServer is newServer without reading the request body first.
func newRawServer(t *testing.T, fn http.HandlerFunc) *server {
	s := &server{}
	s.Server = httptestServer(t, fn)
	return s
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("never saw %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func httptestServer(t *testing.T, fn http.HandlerFunc) *httptest.Server {
	s := httptest.NewServer(fn)
	t.Cleanup(s.Close)
	return s
}
