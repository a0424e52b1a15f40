package integration

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// A registry with basic auth (htpasswd): no credentials fail clearly;
// config.json auths and a credential helper (credHelpers) succeed; no run
// ever shows the secret, --debug included.
func TestAuthFromDockerConfig(t *testing.T) {
	t.Parallel()
	const user, secret = "pusher", "s3cret-Pa55word"
	reg := basicAuthRegistry(t, user, secret)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 31})
	name := reg.Host + "/auth/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))

	encoded := base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))
	var outputs []string
	run := func(config string, extraEnv []string, args ...string) result {
		dir := t.TempDir()
		if config != "" {
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		r := ctrpushEnv(t, append([]string{"DOCKER_CONFIG=" + dir}, extraEnv...), root, args...)
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}

	// No credentials.
	r := run("", nil, "push", name)
	if r.code != 1 || !strings.Contains(r.stderr, reg.Host) || !strings.Contains(strings.ToLower(r.stderr), "authoriz") {
		t.Fatalf("push without credentials: exit %d, %s", r.code, r.stderr)
	}

	// auths in config.json, with --debug.
	auths := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, encoded)
	if r := run(auths, nil, "--debug", "push", name, reg.Host+"/auth/a:1.0"); r.code != 0 {
		t.Fatalf("push with auths: exit %d, %s", r.code, r.stderr)
	}
	assertPushed(t, reg, "auth/a", "1.0", img.Target.Digest)

	// A credential helper named by credHelpers, found on PATH.
	bin := t.TempDir()
	helper := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho '{\"ServerURL\":\"'$server'\",\"Username\":\"%s\",\"Secret\":\"%s\"}'\n", user, secret)
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-ctrpushtest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	helpers := fmt.Sprintf(`{"credHelpers":{%q:"ctrpushtest"}}`, reg.Host)
	if r := run(helpers, []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, "push", name, reg.Host+"/auth/b:1.0"); r.code != 0 {
		t.Fatalf("push with a credential helper: exit %d, %s", r.code, r.stderr)
	}
	assertPushed(t, reg, "auth/b", "1.0", img.Target.Digest)

	// A helper that is missing, or fails: the push names it and how it
	// failed, never just "401", and never what it printed.
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-failing"), []byte("#!/bin/sh\necho helper-printed-this\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ helper, want string }{
		{"nosuchhelper", "executable file not found"},
		{"failing", "exit status 3"},
	} {
		cfg := fmt.Sprintf(`{"credHelpers":{%q:%q}}`, reg.Host, tc.helper)
		r := run(cfg, []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, "push", name, reg.Host+"/auth/c:1.0")
		if r.code != 1 || !strings.Contains(r.stderr, "docker-credential-"+tc.helper) || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "helper-printed-this") {
			t.Fatalf("push with credential helper %s: exit %d\n%s", tc.helper, r.code, r.stderr)
		}
	}

	// ctrpush login / logout write the same config.json docker uses.
	dc := t.TempDir()
	login := func(password string) result {
		t.Helper()
		ctx := t.Context()
		cmd := exec.CommandContext(ctx, ctrpushBin, "login", "-u", user, "--password-stdin", reg.Host)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dc)
		cmd.Stdin = strings.NewReader(password + "\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}
	if r := login("wrong-" + secret); r.code != 1 || !strings.Contains(r.stderr, "refused the credentials") {
		t.Fatalf("login with a wrong password: exit %d, %s", r.code, r.stderr)
	}
	if r := login(secret); r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login: exit %d, %s", r.code, r.stderr)
	}
	if r := ctrpushEnv(t, []string{"DOCKER_CONFIG=" + dc}, root, "push", name, reg.Host+"/auth/c:1.0"); r.code != 0 {
		t.Fatalf("push after login: exit %d, %s", r.code, r.stderr)
	}
	if r := ctrpushEnv(t, []string{"DOCKER_CONFIG=" + dc}, root, "logout", reg.Host); r.code != 0 {
		t.Fatalf("logout: %+v", r)
	}
	if r := ctrpushEnv(t, []string{"DOCKER_CONFIG=" + dc}, root, "push", name, reg.Host+"/auth/d:1.0"); r.code != 1 {
		t.Fatalf("push after logout: exit %d, %s", r.code, r.stderr)
	}

	for _, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, encoded) {
			t.Fatalf("a secret appears in the output:\n%s", out)
		}
	}
}

// An upload Location on another host gets no Authorization header: the
// registry (behind proxy A, basic auth) hands out upload URLs on proxy B,
// which stands for a signed-URL endpoint and adds its own credentials.
func TestNoCredentialsToAnotherUploadHost(t *testing.T) {
	t.Parallel()
	const user, secret = "pusher", "an0ther-Secret"
	reg := basicAuthRegistry(t, user, secret)
	b := faultproxy.Start(t, reg.Host)
	b.SetInject(http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+secret))}})
	a := faultproxy.Start(t, reg.Host)
	a.SetRewrite(func(resp *http.Response) {
		if loc := resp.Header.Get("Location"); strings.Contains(loc, "/blobs/uploads/") {
			// A signed URL: the query values are credentials too.
			resp.Header.Set("Location", strings.Replace(loc, a.Host, b.Host, 1)+"&X-Amz-Credential="+signedCred+"&X-Amz-Signature="+signature)
		}
	})
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 32})
	name := a.Host + "/redirect/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
	dc := t.TempDir()
	writeFile(t, filepath.Join(dc, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, a.Host, base64.StdEncoding.EncodeToString([]byte(user+":"+secret)))))
	// hosts.toml gives the registry a static header: a credential too.
	hostsDir := t.TempDir()
	writeFile(t, filepath.Join(hostsDir, a.Host, "hosts.toml"), []byte("server = \"http://"+a.Host+"\"\n\n[host.\"http://"+a.Host+"\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  [host.\"http://"+a.Host+"\".header]\n    X-Api-Key = [\"k3y-for-the-registry\"]\n"))
	r := ctrpushEnv(t, []string{"DOCKER_CONFIG=" + dc}, root, "--debug", "--hosts-dir", hostsDir, "push", name)
	if r.code != 0 {
		t.Fatalf("push: exit %d, %s", r.code, r.stderr)
	}
	outputs := []string{r.stdout, r.stderr}
	withAuth, all := b.Authorized()
	if all == 0 {
		t.Fatal("no upload went to the other host: the test tested nothing")
	}
	if withAuth != 0 {
		t.Fatalf("%d of %d requests to the other upload host carried our Authorization header", withAuth, all)
	}
	if n := b.WithHeader("X-Api-Key"); n != 0 || a.WithHeader("X-Api-Key") == 0 {
		t.Fatalf("hosts.toml's header reached the other upload host %d times (the registry %d times)", n, a.WithHeader("X-Api-Key"))
	}
	// --debug logs each registry request, without the URL's query.
	if !strings.Contains(r.stderr, `msg="registry request"`) || !strings.Contains(r.stderr, "method=PUT") || !strings.Contains(r.stderr, "status=201") {
		t.Fatalf("--debug does not log the registry requests:\n%s", r.stderr)
	}
	assertPushed(t, reg, "redirect/app", "1.0", img.Target.Digest)

	// The signed-URL host refuses the upload: the error names the blob
	// but not the URL's secret values, --debug included.
	b.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPut {
			return faultproxy.Fault{Status: http.StatusForbidden, Code: "DENIED"}
		}
		return faultproxy.Fault{}
	})
	other := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 33})
	otherName := a.Host + "/redirect/other:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, other, "oci-tar", otherName, "1.0"))
	r = ctrpushEnv(t, []string{"DOCKER_CONFIG=" + dc}, root, "--debug", "push", otherName)
	if r.code != 1 || !strings.Contains(r.stderr, "DENIED") {
		t.Fatalf("push to a refusing upload host: exit %d, %s", r.code, r.stderr)
	}
	outputs = append(outputs, r.stdout, r.stderr)
	if !strings.Contains(r.stderr, "level=debug") {
		t.Fatalf("--debug printed no debug log:\n%s", r.stderr)
	}
	for _, out := range outputs {
		for _, s := range []string{secret, signature, signedCred, base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))} {
			if strings.Contains(out, s) {
				t.Fatalf("%q appears in the output:\n%s", s, out)
			}
		}
	}
}

const (
	signedCred = "AKIAEXAMPLE0cred"
	signature  = "d3adb33fs1gnatur3"
)

// basicAuthRegistry starts a registry that wants user:secret (htpasswd).
func basicAuthRegistry(t *testing.T, user, secret string) *registrytest.Registry {
	return registrytest.StartHtpasswd(t, user, secret)
}
