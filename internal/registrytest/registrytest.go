// Package registrytest starts the reference registry (distribution v3, see
// internal/cmd/testregistry) on 127.0.0.1 for a test, and reads back what it
// holds and which requests it received.
package registrytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
)

// Request is one request the registry logged.
type Request struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Query     string `json:"query,omitempty"`
	Status    int    `json:"status"`
	BodyBytes int64  `json:"bodyBytes"`
}

// Registry is a running test registry.
type Registry struct {
	// Host is "127.0.0.1:PORT".
	Host string
	cmd  *exec.Cmd
	// User and Password, when set, go with every helper request (a
	// registry started with -htpasswd).
	User, Password string
	// Scheme ("http" unless set) and Client (default http.DefaultClient)
	// for a registry started with -tls-cert.
	Scheme string
	Client *http.Client
}

// get sends an authenticated (when User is set) request.
func (r *Registry) get(method, u, accept string) (*http.Response, error) {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if r.User != "" {
		req.SetBasicAuth(r.User, r.Password)
	}
	c := r.Client
	if c == nil {
		c = http.DefaultClient
	}
	return c.Do(req)
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of the testregistry program: $CTRPUSH_TESTREGISTRY
// when set (the Makefile builds it once), else built now with `go build`.
func Binary() (string, error) {
	buildOnce.Do(func() {
		if p := os.Getenv("CTRPUSH_TESTREGISTRY"); p != "" {
			buildPath = p
			return
		}
		dir, err := os.MkdirTemp("", "ctrpush-testregistry-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "testregistry")
		out, err := exec.Command("go", "build", "-o", buildPath, "github.com/ctrpush/ctrpush/internal/cmd/testregistry").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build testregistry: %v\n%s", err, out)
		}
	})
	return buildPath, buildErr
}

// Start starts a registry with storage in a temporary directory; it is
// stopped when the test ends. args go to testregistry (-htpasswd FILE).
func Start(t testing.TB, args ...string) *Registry {
	t.Helper()
	r, stop, err := StartProcess(filepath.Join(t.TempDir(), "storage"), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return r
}

// StartHtpasswd starts a registry that wants basic auth as user:secret
// (htpasswd, bcrypt); User and Password are set.
func StartHtpasswd(t testing.TB, user, secret string) *Registry {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := Start(t, "-htpasswd", htpasswd)
	reg.User, reg.Password = user, secret
	return reg
}

// Stop kills the registry (to test "registry down").
func (r *Registry) Stop() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}

func (r *Registry) url(p string) string {
	scheme := r.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + r.Host + p
}

// Requests returns every request logged since start or the last Reset.
func (r *Registry) Requests(t testing.TB) []Request {
	t.Helper()
	resp, err := r.get(http.MethodGet, r.url("/_requests"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []Request
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Reset clears the request log.
func (r *Registry) Reset(t testing.TB) {
	t.Helper()
	resp, err := r.get(http.MethodDelete, r.url("/_requests"), "")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// Manifest fetches repo's manifest by tag or digest and returns its digest
// (from the body), media type and bytes; ok is false on 404.
func (r *Registry) Manifest(t testing.TB, repo, ref string) (d digest.Digest, mediaType string, body []byte, ok bool) {
	t.Helper()
	resp, err := r.get(http.MethodGet, r.url("/v2/"+repo+"/manifests/"+ref), manifestAccept)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return "", "", nil, false
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s:%s: %s %s", repo, ref, resp.Status, body)
	}
	return digest.FromBytes(body), resp.Header.Get("Content-Type"), body, true
}

// Blob returns the bytes of a blob, ok false on 404.
func (r *Registry) Blob(t testing.TB, repo string, d digest.Digest) ([]byte, bool) {
	t.Helper()
	resp, err := r.get(http.MethodGet, r.url("/v2/"+repo+"/blobs/"+d.String()), "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, false
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob %s@%s: %s", repo, d, resp.Status)
	}
	return b, true
}

// Tags lists repo's tags (nil when the repository does not exist).
func (r *Registry) Tags(t testing.TB, repo string) []string {
	t.Helper()
	resp, err := r.get(http.MethodGet, r.url("/v2/"+repo+"/tags/list"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var out struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Tags
}

// Catalog lists the repositories the registry holds.
func (r *Registry) Catalog(t testing.TB) []string {
	t.Helper()
	resp, err := r.get(http.MethodGet, r.url("/v2/_catalog"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Repositories
}

// DeleteBlob removes a blob from one repository (the registry keeps it for
// others), as an operator cleaning up a repository would.
func (r *Registry) DeleteBlob(t testing.TB, repo string, d digest.Digest) {
	t.Helper()
	resp, err := r.get(http.MethodDelete, r.url("/v2/"+repo+"/blobs/"+d.String()), "")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE blob %s@%s: %s", repo, d, resp.Status)
	}
}

// Referrers asks the referrers API for the manifests whose subject is
// subject in repo; ok is false when the registry has no such API (404).
func (r *Registry) Referrers(t testing.TB, repo string, subject digest.Digest) (refs []ocispec.Descriptor, ok bool) {
	t.Helper()
	resp, err := r.get(http.MethodGet, r.url("/v2/"+repo+"/referrers/"+subject.String()), ocispec.MediaTypeImageIndex)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, false
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET referrers of %s in %s: %s", subject, repo, resp.Status)
	}
	var idx ocispec.Index
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil {
		t.Fatal(err)
	}
	return idx.Manifests, true
}
