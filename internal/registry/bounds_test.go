package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A 5xx whose body names a fault in what was sent (distribution's answer
// to a manifest with refused foreign-layer URLs: 500, UNKNOWN, UNKNOWN,
// MANIFEST_BLOB_UNKNOWN) is no transient fault; every error shows.
func TestRefusalInA5xxIsPermanent(t *testing.T) {
	e := &Error{Op: "put manifest", Status: 500, Code: "UNKNOWN", Message: "unknown error", Errors: []ErrorEntry{
		{Code: "UNKNOWN", Message: "unknown error"}, {Code: "UNKNOWN", Message: "unknown error", Detail: "invalid URL on layer"},
		{Code: "MANIFEST_BLOB_UNKNOWN", Message: "blob unknown to registry", Detail: "sha256:aa"}}}
	if DefaultRetryPolicy.Transient(e) {
		t.Fatal("a 500 naming MANIFEST_BLOB_UNKNOWN is retried")
	}
	if !DefaultRetryPolicy.Transient(&Error{Status: 500, Code: "UNKNOWN"}) {
		t.Fatal("a plain 500 is no longer retried")
	}
	want := "put manifest: registry answered 500 Internal Server Error (UNKNOWN: unknown error; UNKNOWN: unknown error [invalid URL on layer]; MANIFEST_BLOB_UNKNOWN: blob unknown to registry [sha256:aa])"
	if e.Error() != want {
		t.Fatalf("error %q, want %q", e.Error(), want)
	}
	// The access list distribution sends with a 401 is left out.
	auth := &Error{Op: "push", Status: 401, Errors: []ErrorEntry{{Code: "UNAUTHORIZED", Message: "authentication required", Detail: `[{"Type":"repository","Name":"team/app","Action":"push"}]`}}}
	if want := "push: registry answered 401 Unauthorized (UNAUTHORIZED: authentication required)"; auth.Error() != want {
		t.Fatalf("error %q, want %q", auth.Error(), want)
	}
}

// A registry that redirects to a scheme Go's client cannot follow
// (ftp://) fails the request at once, naming both ends: another attempt
// would get the same redirect.
func TestRedirectToAnUnsupportedSchemeFailsAtOnce(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://files.example.com/blob", http.StatusTemporaryRedirect)
	})
	r := repoOn(t, s, fastPolicy)
	d := digest.FromString("x")
	_, err := r.Fetch(t.Context(), blobDesc(d))
	var re *RedirectError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "ftp://files.example.com/blob") || !strings.Contains(err.Error(), "/v2/team/app/blobs/"+d.String()) {
		t.Fatalf("redirect to ftp: %v", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Fatalf("the registry saw %d requests, want 1 (no retry)", n)
	}
}

// A header of hosts.toml that HTTP cannot carry (a line break in its
// value, a space in its name) fails the configuration at once, naming the
// registry and the header, before any request (it used to fail every
// attempt of every request, retried as a transport fault).
func TestInvalidHostsHeaderFailsAtOnce(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, tc := range []struct{ header, want string }{
		{`x-team = "a\nb"`, "header x-team"},
		{`"x team" = "a"`, `"x team"`},
	} {
		root := t.TempDir()
		dir := filepath.Join(root, s.host())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		toml := fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  [host.%q.header]\n    %s\n", s.URL, s.URL, s.URL, tc.header)
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := NewRepository(RegistryHosts(HostsConfig{HostsDirs: []string{root}}), s.host(), "team/app", ForPull, fastPolicy)
		if err == nil || !strings.Contains(err.Error(), "registry configuration for "+s.host()) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), root) {
			t.Fatalf("header %s: %v", tc.header, err)
		}
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("the registry saw %d requests", n)
	}
}

// A tags/list whose Link header leads back to a page already fetched
// ends the listing instead of looping.
func TestTagsLinkBackToAFetchedPageEnds(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("last") == "" {
			w.Header().Set("Link", `</v2/team/app/tags/list?last=b&n=2>; rel="next"`)
			fmt.Fprint(w, `{"name":"team/app","tags":["a","b"]}`)
			return
		}
		// The last page links to itself.
		w.Header().Set("Link", `</v2/team/app/tags/list?last=b&n=2>; rel="next"`)
		fmt.Fprint(w, `{"name":"team/app","tags":["c"]}`)
	})
	tags, err := repoOn(t, s, fastPolicy).Tags(t.Context())
	if err != nil || !reflect.DeepEqual(tags, []string{"a", "b", "c"}) {
		t.Fatalf("Tags: %v %v", tags, err)
	}
	if n := len(s.requests()); n != 2 {
		t.Fatalf("%d pages asked for, want 2", n)
	}
}

// blobDesc is a layer descriptor of digest d (size unknown to the test).
func blobDesc(d digest.Digest) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: 1}
}

// endless writes n bytes of filler (chunked: no Content-Length), counting
// what it wrote.
func endless(w http.ResponseWriter, n int64, wrote *atomic.Int64) {
	buf := bytes.Repeat([]byte(" "), 32<<10)
	for wrote.Load() < n {
		m, err := w.Write(buf)
		wrote.Add(int64(m))
		if err != nil {
			return
		}
	}
}

// A manifest, index or config answer over its cap (4 MiB) is refused
// before it streams (by the descriptor or Content-Length) or while it
// streams, naming what, its size and the cap; the registry stands for one
// that announces, or streams, a 2 GiB manifest.
func TestOversizedManifestIsRefusedWhileReading(t *testing.T) {
	const huge = 2 << 30
	var wrote atomic.Int64
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/announced"):
			// A HEAD whose Content-Length says 2 GiB, with a digest.
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			w.Header().Set("Docker-Content-Digest", digest.FromString("huge").String())
			w.Header().Set("Content-Length", fmt.Sprint(huge))
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodGet:
			// Streams without a Content-Length.
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.WriteHeader(http.StatusOK)
			endless(w, 16<<20, &wrote)
		default:
			w.WriteHeader(http.StatusOK) // HEAD with no digest: ask with GET
		}
	})
	r := repoOn(t, s, fastPolicy)
	var tl *TooLargeError
	_, err := r.Resolve(t.Context(), "announced")
	if !errors.As(err, &tl) || tl.Size != huge || tl.Cap != 4<<20 || !strings.Contains(err.Error(), s.host()+"/team/app:announced") || !strings.Contains(err.Error(), "4MiB") {
		t.Fatalf("resolve of a 2 GiB manifest: %v", err)
	}
	_, err = r.Resolve(t.Context(), "streamed")
	if !errors.As(err, &tl) || tl.Size != -1 || !strings.Contains(err.Error(), "team/app:streamed") {
		t.Fatalf("resolve of a streamed manifest: %v", err)
	}
	before := len(s.requests())
	for _, mt := range []string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageConfig} {
		_, err = r.Fetch(t.Context(), ocispec.Descriptor{MediaType: mt, Digest: digest.FromString("huge"), Size: huge})
		if !errors.As(err, &tl) || tl.Size != huge {
			t.Fatalf("fetch of a 2 GiB %s: %v", mt, err)
		}
	}
	if n := len(s.requests()) - before; n != 0 {
		t.Fatalf("descriptors over the cap were asked for (%d requests)", n)
	}
	// A manifest whose descriptor is small but whose answer is not.
	rc, err := r.Fetch(t.Context(), ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("small"), Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if !errors.As(err, &tl) || n != 1000 || !strings.Contains(err.Error(), "@"+digest.FromString("small").String()) {
		t.Fatalf("a manifest streaming past its descriptor: %d bytes, %v", n, err)
	}
	if wrote.Load() == 0 {
		t.Fatal("the registry streamed nothing")
	}
}
