package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctrpush/ctrpush/internal/containerdtest"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testenv"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/server"
)

// served is a running `ctrpush serve` on a unix socket.
type served struct {
	cmd    *exec.Cmd
	sock   string
	stderr *lockedBuffer
	done   chan error
}

// startServe runs `ctrpush --debug STORE-ARGS serve` on a socket in a
// temporary directory and waits until it answers.
func startServe(t *testing.T, storeArgs ...string) *served {
	t.Helper()
	s := &served{sock: filepath.Join(t.TempDir(), "ctrpush.sock"), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	args := append(append([]string{"--debug"}, storeArgs...), "serve", "--listen", "unix://"+s.sock)
	s.cmd = exec.Command(ctrpushBin, args...)
	s.cmd.Stderr, s.cmd.Stdout = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", s.sock)
	}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("http://ctrpush/_ping")
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("ctrpush serve never answered: %v\n%s", err, s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dockerCLI finds the real docker client; the API test needs it.
func dockerCLI(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("docker")
	if err != nil {
		testenv.Missing(t, "the docker CLI is not installed (Debian: apt-get install docker.io, or docker-ce-cli): the Engine API test needs the real client")
	}
	return p
}

// docker runs the docker CLI against the server with its own config dir.
func (s *served) docker(t *testing.T, bin, config, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+s.sock, "DOCKER_CONFIG="+config, "DOCKER_CLI_HINTS=false")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// The real docker CLI against `ctrpush serve`: tag, push, push --all-tags,
// an unknown image, login and push to (and pull from) an htpasswd registry; images and
// inspect; the password never in ctrpush's log (--debug); SIGTERM ends
// the server cleanly and removes its socket.
func TestDockerCLIThroughServe(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	reg := registrytest.Start(t)
	const user, secret = "pusher", "d0cker-Pa55word"
	private := registrytest.StartHtpasswd(t, user, secret)
	root := t.TempDir()
	img := importSample(t, root, reg.Host+"/team/app:1.0", "1.0", 71)
	s := startServe(t, "--root", root)
	config := t.TempDir()

	if fi, err := os.Stat(s.sock); err != nil || fi.Mode().Perm() != server.SocketMode {
		t.Fatalf("socket mode: %v %v", fi.Mode().Perm(), err)
	}
	if r := s.docker(t, docker, config, "", "tag", reg.Host+"/team/app:1.0", reg.Host+"/team/app:2.0"); r.code != 0 {
		t.Fatalf("docker tag: %d %s", r.code, r.stderr)
	}
	r := s.docker(t, docker, config, "", "push", reg.Host+"/team/app:1.0")
	if r.code != 0 || !strings.Contains(r.stdout, "The push refers to repository ["+reg.Host+"/team/app]") ||
		!strings.Contains(r.stdout, "1.0: digest: "+img.Target.Digest.String()) || !strings.Contains(r.stdout, "Pushed") {
		t.Fatalf("docker push: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertPushed(t, reg, "team/app", "1.0", img.Target.Digest)

	r = s.docker(t, docker, config, "", "push", "--all-tags", reg.Host+"/team/app")
	if r.code != 0 || !strings.Contains(r.stdout, "2.0: digest: "+img.Target.Digest.String()) {
		t.Fatalf("docker push --all-tags: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertPushed(t, reg, "team/app", "2.0", img.Target.Digest)

	// docker push --platform: the one manifest (the CLI sends ?platform= as JSON).
	if r := s.docker(t, docker, config, "", "tag", reg.Host+"/team/app:1.0", reg.Host+"/team/arm:1.0"); r.code != 0 {
		t.Fatalf("docker tag: %d %s", r.code, r.stderr)
	}
	arm := img.Manifests[1]
	if arm.Platform.Architecture != "arm64" {
		t.Fatalf("sample image's second manifest is %+v", arm.Platform)
	}
	r = s.docker(t, docker, config, "", "push", "--platform", "linux/arm64", reg.Host+"/team/arm:1.0")
	if r.code != 0 || !strings.Contains(r.stdout, "1.0: digest: "+arm.Descriptor.Digest.String()) {
		t.Fatalf("docker push --platform: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "Not all multiplatform-content is present") {
		// dockerd sends ManifestPushedInsteadOfIndex only for its
		// fallback (no platform asked, content missing).
		t.Fatalf("docker push --platform says content is missing when all of it is present:\n%s\n%s", r.stdout, r.stderr)
	}
	assertPushed(t, reg, "team/arm", "1.0", arm.Descriptor.Digest)

	r = s.docker(t, docker, config, "", "push", reg.Host+"/team/nope:1")
	if r.code != 1 || !strings.Contains(r.stderr, "An image does not exist locally with the tag: "+reg.Host+"/team/nope") {
		t.Fatalf("docker push of an unknown image: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	r = s.docker(t, docker, config, "", "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
	if r.code != 0 || !strings.Contains(r.stdout, reg.Host+"/team/app:1.0 "+img.Target.Digest.Encoded()[:12]) || !strings.Contains(r.stdout, reg.Host+"/team/app:2.0") {
		t.Fatalf("docker images: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = s.docker(t, docker, config, "", "images", "--format", "{{.Repository}}:{{.Tag}}", reg.Host+"/team/arm")
	if r.code != 0 || strings.TrimSpace(r.stdout) != reg.Host+"/team/arm:1.0" {
		t.Fatalf("docker images REPO: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = s.docker(t, docker, config, "", "image", "inspect", "--format", "{{.Id}} {{.Os}}/{{.Architecture}}", reg.Host+"/team/app:2.0")
	if r.code != 0 || strings.TrimSpace(r.stdout) != img.Target.Digest.String()+" linux/amd64" {
		t.Fatalf("docker image inspect: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// docker login (through the server's /auth), then a push that carries
	// X-Registry-Auth.
	r = s.docker(t, docker, config, secret+"\n", "login", "-u", user, "--password-stdin", private.Host)
	if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("docker login: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := s.docker(t, docker, config, "", "tag", reg.Host+"/team/app:1.0", private.Host+"/team/app:1.0"); r.code != 0 {
		t.Fatalf("docker tag: %d %s", r.code, r.stderr)
	}
	r = s.docker(t, docker, config, "", "push", private.Host+"/team/app:1.0")
	if r.code != 0 {
		t.Fatalf("docker push after login: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertPushed(t, private, "team/app", "1.0", img.Target.Digest)
	// Without credentials (another config dir) the same push fails.
	r = s.docker(t, docker, t.TempDir(), "", "push", private.Host+"/team/app:1.0")
	if r.code == 0 {
		t.Fatalf("docker push without login succeeded:\n%s", r.stdout)
	}
	// docker pull carries X-Registry-Auth too.
	if r := s.docker(t, docker, config, "", "rmi", private.Host+"/team/app:1.0"); r.code != 0 {
		t.Fatalf("docker rmi: %d %s", r.code, r.stderr)
	}
	r = s.docker(t, docker, t.TempDir(), "", "pull", private.Host+"/team/app:1.0")
	if r.code == 0 || !strings.Contains(r.stderr, "pull access denied for "+private.Host+"/team/app") {
		t.Fatalf("docker pull without login: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = s.docker(t, docker, config, "", "pull", private.Host+"/team/app:1.0")
	if r.code != 0 || !strings.Contains(r.stdout, "Digest: "+img.Target.Digest.String()) {
		t.Fatalf("docker pull after login: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// SIGTERM: a clean stop, the socket removed.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v\n%s", err, s.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
	if _, err := os.Stat(s.sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after SIGTERM: %v", err)
	}
	log := s.stderr.String()
	if !strings.Contains(log, "api request") || !strings.Contains(log, "level=debug") {
		t.Fatalf("the server log has no request lines:\n%s", log)
	}
	if !strings.Contains(log, `/auth" status=200`) && !strings.Contains(log, "/auth status=200") {
		t.Fatalf("docker login did not go through the server's /auth:\n%s", log)
	}
	for _, secretForm := range []string{secret, "X-Registry-Auth", base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))} {
		if strings.Contains(log, secretForm) {
			t.Fatalf("the server log shows %q:\n%s", secretForm, log)
		}
	}
}

// On a containerd daemon: an image ctr imported is tagged and pushed by
// the docker CLI through ctrpush serve; ctr sees the new tag and no lease
// is left.
func TestDockerCLIThroughServeOnDaemon(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	d := containerdtest.Start(t)
	reg := registrytest.Start(t)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, Seed: 72})
	name := reg.Host + "/daemon/served:1.0"
	d.Ctr(t, "svc", "images", "import", writeArchive(t, img, "oci-tar", name, "1.0"))
	s := startServe(t, "--address", d.Address, "--namespace", "svc")
	config := t.TempDir()
	if r := s.docker(t, docker, config, "", "tag", name, reg.Host+"/daemon/served:2.0"); r.code != 0 {
		t.Fatalf("docker tag: %d %s", r.code, r.stderr)
	}
	if ls := d.Ctr(t, "svc", "images", "ls", "-q"); !strings.Contains(ls, reg.Host+"/daemon/served:2.0") {
		t.Fatalf("ctr does not see the tag:\n%s", ls)
	}
	r := s.docker(t, docker, config, "", "push", reg.Host+"/daemon/served:2.0")
	if r.code != 0 || !strings.Contains(r.stdout, "2.0: digest: "+img.Target.Digest.String()) {
		t.Fatalf("docker push: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertPushed(t, reg, "daemon/served", "2.0", img.Target.Digest)
	if leases := strings.TrimSpace(d.Ctr(t, "svc", "leases", "ls")); strings.Count(leases, "\n") != 0 {
		t.Fatalf("leases left behind:\n%s", leases)
	}
}
