// Package integration holds black-box tests: the built ctrpush binary
// against the reference registry (started per test on 127.0.0.1), checked
// through the registry's API and ctrpush's public Go API.
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/store"
)

var ctrpushBin string

func TestMain(m *testing.M) {
	_ = log.SetLevel("error")
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// setup finds the binary ($CTRPUSH_BIN when set) or builds it (with -race
// when the tests have it) into a temporary directory.
func setup(m *testing.M) (int, error) {
	// A race-built ctrpush sleeps 1 s before it exits (the race runtime's
	// atexit_sleep_ms, 1000 by default), a second the tests would wait on
	// every run of the binary. Without it races are still detected and
	// fail the run (exit 66); only a goroutine racing after main returned
	// could go unseen. An atexit_sleep_ms given in GORACE is kept.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		if err := os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0")); err != nil {
			return 0, err
		}
	}
	ctrpushBin = os.Getenv("CTRPUSH_BIN")
	if ctrpushBin == "" {
		dir, err := os.MkdirTemp("", "ctrpush-integration-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		ctrpushBin = filepath.Join(dir, "ctrpush")
		args := []string{"build", "-o", ctrpushBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/ctrpush/ctrpush/cmd/ctrpush")...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("build ctrpush: %v\n%s", err, out)
		}
	}
	return m.Run(), nil
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// ctrpush runs the binary with --root root and args; an empty root leaves
// the store to the args (--address).
func ctrpush(t *testing.T, root string, args ...string) result {
	t.Helper()
	return ctrpushEnv(t, nil, root, args...)
}

// ctrpushEnv is ctrpush with extra environment variables ("K=V").
func ctrpushEnv(t *testing.T, env []string, root string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if root != "" {
		args = append([]string{"--root", root}, args...)
	}
	cmd := exec.CommandContext(ctx, ctrpushBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run ctrpush %v: %v", args, err)
	}
	return r
}

// mustCtrpush runs the binary and fails the test unless it exits 0.
func mustCtrpush(t *testing.T, root string, args ...string) result {
	t.Helper()
	r := ctrpush(t, root, args...)
	if r.code != 0 {
		t.Fatalf("ctrpush %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// storeCounts is what a store holds: images, blobs, leases.
type storeCounts struct{ images, content, leases int }

// countStore opens the embedded store at root through the public API.
func countStore(t *testing.T, root string) storeCounts {
	t.Helper()
	ctx := namespaces.WithNamespace(t.Context(), imageservice.DefaultNamespace)
	st, err := store.OpenEmbedded(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var c storeCounts
	imgs, err := st.ImageStore().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.images = len(imgs)
	if err := st.ContentStore().Walk(ctx, func(content.Info) error { c.content++; return nil }); err != nil {
		t.Fatal(err)
	}
	ls, err := st.LeaseManager().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.leases = len(ls)
	return c
}
