// Package containerdtest starts a real containerd daemon for a test: the
// containerd and ctr binaries of the containerd version in go.mod (built
// with `go install` unless $CTRPUSH_CONTAINERD_BIN names a directory that
// has them), on a private socket with root and state under a temporary
// directory, with the CRI and NRI plugins off (they would write to /etc/cni
// and /var/run/nri).
package containerdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctrpush/ctrpush/internal/testenv"
)

// Daemon is a running containerd.
type Daemon struct {
	Address string // unix socket
	Dir     string
	ctr     string
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries returns the directory holding containerd and ctr.
func Binaries() (string, error) {
	buildOnce.Do(func() {
		if d := os.Getenv("CTRPUSH_CONTAINERD_BIN"); d != "" {
			binDir = d
			return
		}
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/containerd/containerd/v2").Output()
		if err != nil {
			buildErr = fmt.Errorf("containerd version from go.mod: %w", err)
			return
		}
		version := strings.TrimSpace(string(out))
		cache, _ := os.UserCacheDir()
		binDir = filepath.Join(cache, "ctrpush-test", "containerd-"+version)
		if _, err := os.Stat(filepath.Join(binDir, "ctr")); err == nil {
			return
		}
		cmd := exec.Command("go", "install",
			"github.com/containerd/containerd/v2/cmd/containerd@"+version,
			"github.com/containerd/containerd/v2/cmd/ctr@"+version)
		cmd.Env = append(os.Environ(), "GOBIN="+binDir, "GOFLAGS=")
		cmd.Dir = os.TempDir() // outside our module: containerd's own go.mod decides
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build containerd %s: %v\n%s", version, err, out)
		}
	})
	return binDir, buildErr
}

// Start starts containerd for the test, or skips the test when not root
// (containerd needs root for its state directories and mounts).
func Start(t testing.TB) *Daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "the containerd daemon tests need root: containerd refuses to run its plugins otherwise")
	}
	d, stop, err := StartProcess()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(d.Dir, "containerd.log")); err == nil {
				t.Logf("containerd log:\n%s", b)
			}
		}
		stop()
	})
	return d
}

// StartProcess starts containerd in a new temporary directory, for callers
// without a testing.TB (the benchmark). stop kills it and removes the
// directory.
func StartProcess() (d *Daemon, stop func(), err error) {
	bins, err := Binaries()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "ctrd-") // short: a unix socket path is at most 108 bytes
	if err != nil {
		return nil, nil, err
	}
	d = &Daemon{Address: filepath.Join(dir, "c.sock"), Dir: dir, ctr: filepath.Join(bins, "ctr")}
	// containerd 1.x (Debian's package) reads config version 2.
	version := 3
	if out, err := exec.Command(filepath.Join(bins, "containerd"), "--version").Output(); err == nil && strings.Contains(string(out), " 1.") {
		version = 2
	}
	config := fmt.Sprintf(`version = %d
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, version, filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.Address, d.Address+".ttrpc", filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(filepath.Join(bins, "containerd"), "--config", cfgPath, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
		_ = os.RemoveAll(dir)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", d.Address); err == nil {
			_ = c.Close()
			return d, stop, nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			stop()
			return nil, nil, fmt.Errorf("containerd did not listen on %s within 30s:\n%s", d.Address, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CtrPath is the ctr binary that talks to this daemon's version.
func (d *Daemon) CtrPath() string { return d.ctr }

// Ctr runs ctr against the daemon in namespace ns and returns its
// standard output (its warnings go to the test log on failure).
func (d *Daemon) Ctr(t testing.TB, ns string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.ctr, append([]string{"--address", d.Address, "--namespace", ns}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("ctr %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}
