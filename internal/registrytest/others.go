package registrytest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ctrpush/ctrpush/internal/testenv"
)

// StartGGCR starts go-containerregistry's pkg/registry (in memory:
// single-POST uploads, no cross-repository mounts) behind the same
// request log; -referrers among args turns the referrers API on.
func StartGGCR(t testing.TB, args ...string) *Registry {
	t.Helper()
	return Start(t, append([]string{"-impl", "ggcr"}, args...)...)
}

// DebianRegistry is where Debian's docker-registry package (distribution
// 2.8) installs the registry; `make test` installs it when missing.
const DebianRegistry = "/usr/bin/docker-registry"

// StartDebian starts Debian's docker-registry (distribution 2.8) on a free
// loopback port with storage in a temporary directory. It has no request
// log: Requests and Reset are not for it. The test is skipped, saying how
// to install it, when the package is not installed.
func StartDebian(t testing.TB) *Registry {
	t.Helper()
	if _, err := os.Stat(DebianRegistry); err != nil {
		testenv.Missing(t, "Debian's docker-registry (distribution 2.8) is not installed (apt-get install docker-registry; make test does): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n  secret: ctrpush-test\n", filepath.Join(dir, "storage"), host)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(DebianRegistry, "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &Registry{Host: host, cmd: cmd}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Debian's docker-registry did not answer on %s: %v", host, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
