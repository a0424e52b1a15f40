package integration

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// A credential helper that fails: the push and the pull name it and its
// exit status, never what it printed (on stderr too: docker/cli's helper
// client passes the helper's stderr through), and each command asks it
// once for the registry however many requests want credentials.
func TestFailingCredentialHelperAskedOnceAndQuiet(t *testing.T) {
	t.Parallel()
	const user, secret = "pusher", "s3cret-Pa55word"
	const printed = "helper-stderr: password=leaked-by-the-helper"
	reg := basicAuthRegistry(t, user, secret)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 4, Seed: 37})
	name := reg.Host + "/quiet/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))

	bin, calls := t.TempDir(), filepath.Join(t.TempDir(), "calls")
	script := fmt.Sprintf("#!/bin/sh\necho \"$1\" >> %q\necho %q >&2\nexit 1\n", calls, printed)
	writeFile(t, filepath.Join(bin, "docker-credential-leaky"), []byte(script))
	if err := os.Chmod(filepath.Join(bin, "docker-credential-leaky"), 0o755); err != nil {
		t.Fatal(err)
	}
	dc := t.TempDir()
	writeFile(t, filepath.Join(dc, "config.json"), []byte(fmt.Sprintf(`{"credHelpers":{%q:"leaky"}}`, reg.Host)))
	env := []string{"DOCKER_CONFIG=" + dc, "PATH=" + bin + ":" + os.Getenv("PATH")}

	for i, args := range [][]string{{"push", name}, {"pull", name}} {
		r := ctrpushEnv(t, env, root, args...)
		out := r.stdout + r.stderr
		if r.code != 1 || !strings.Contains(r.stderr, "credential helper docker-credential-leaky") || !strings.Contains(r.stderr, "exit status 1") {
			t.Fatalf("%s: exit %d, want 1 and an error naming the helper and its exit status\n%s", args[0], r.code, out)
		}
		if strings.Contains(out, "leaked-by-the-helper") {
			t.Fatalf("%s: the helper's output reached ours:\n%s", args[0], out)
		}
		b, err := os.ReadFile(calls)
		if err != nil {
			t.Fatalf("%s: the helper never ran: %v", args[0], err)
		}
		if got := strings.Count(string(b), "get\n"); got != i+1 {
			t.Fatalf("%s: the helper was asked %d time(s) in all after %d command(s), want once per command", args[0], got, i+1)
		}
	}
}

// formEchoingTokenEndpoint is a token endpoint that fails with a 500 whose
// body echoes the form it was posted (grant_type=password, username,
// password…), then the password alone and in JSON: what a broken
// authentication server may answer. It records the forms it saw.
type formEchoingTokenEndpoint struct {
	mu    sync.Mutex
	forms []url.Values
}

func (e *formEchoingTokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	e.mu.Lock()
	e.forms = append(e.forms, form)
	e.mu.Unlock()
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, "token server failed on %s; you sent %s; {\"password\":%q}", body, form.Get("password"), form.Get("password"))
}

func (e *formEchoingTokenEndpoint) passwordsSeen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, f := range e.forms {
		out = append(out, f.Get("password"))
	}
	return out
}

// --debug never prints a credential: the token endpoint's 500 echoes the
// posted form, containerd logs that body at debug level, and the log's
// filter takes the password out of it (and out of everything else shown).
func TestDebugNeverPrintsTheCredential(t *testing.T) {
	t.Parallel()
	const user, secret = "tokenuser", "Ech0edPassw0rd-xyz"
	echo := &formEchoingTokenEndpoint{}
	tokenSrv := httptest.NewServer(echo)
	t.Cleanup(tokenSrv.Close)
	certDir := t.TempDir()
	signer := issue(t, "ctrpush token signer", nil, false, false)
	rootCerts := writeFile(t, filepath.Join(certDir, "token-root.pem"), signer.PEM)
	reg := registrytest.Start(t, "-token-realm", tokenSrv.URL+"/token", "-token-rootcerts", rootCerts)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 53})
	name := reg.Host + "/debug/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))

	dc := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))
	writeFile(t, filepath.Join(dc, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, auth)))
	r := ctrpushEnv(t, []string{"DOCKER_CONFIG=" + dc}, root, "--debug", "push", name)
	out := r.stdout + r.stderr
	if seen := echo.passwordsSeen(); len(seen) == 0 || seen[0] != secret {
		t.Fatalf("the token endpoint was not posted the password (saw %q): the echo never happened\n%s", seen, out)
	}
	if !strings.Contains(r.stderr, "token request failed") {
		t.Fatalf("no debug line about the token endpoint's answer: the log under test was not written\n%s", out)
	}
	if r.code != 1 {
		t.Fatalf("push: exit %d, want 1\n%s", r.code, out)
	}
	for _, s := range []string{secret, url.QueryEscape(secret), auth} {
		if strings.Contains(out, s) {
			t.Fatalf("the output shows the credential (%q):\n%s", s, out)
		}
	}
}
