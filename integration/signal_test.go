package integration

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// SIGINT in the middle of an upload (through a throttled proxy): exit 130
// within 2 s, the upload session cancelled, no lease left, and a re-run
// succeeds.
func TestInterruptMidUpload(t *testing.T) {
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, LayerSize: 8 << 20, Seed: 61})
	name := proxy.Host + "/sig/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
	before := countStore(t, root)
	proxy.SetRate(1 << 20)
	uploading := make(chan struct{})
	var once sync.Once
	var deletes atomic.Int32
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		switch r.Method {
		case http.MethodPut:
			once.Do(func() { close(uploading) })
		case http.MethodDelete:
			deletes.Add(1)
		}
		return faultproxy.Fault{}
	})

	cmd, stderr := startPush(t, root, name)
	waitUpload(t, uploading, stderr)
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit after SIGINT: %v\n%s", err, stderr.String())
	}
	if took > 2*time.Second {
		t.Fatalf("exited %s after SIGINT, want within 2 s", took)
	}
	if after := countStore(t, root); after != before {
		t.Fatalf("store changed by the interrupted push: %+v → %+v", before, after)
	}
	if deletes.Load() == 0 {
		t.Fatal("the interrupted upload's session was not cancelled (no DELETE)")
	}
	proxy.SetRate(0)
	if r := ctrpush(t, root, "push", name); r.code != 0 {
		t.Fatalf("re-run after the interrupt: exit %d, %s", r.code, r.stderr)
	}
	assertPushed(t, reg, "sig/app", "1.0", img.Target.Digest)
}

// A second SIGINT exits at once, even while the first one's clean-up is
// still waiting (here: on an upload-session DELETE the proxy holds back).
// The store is left usable: a re-run succeeds.
func TestSecondInterruptExitsAtOnce(t *testing.T) {
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, LayerSize: 8 << 20, Seed: 62})
	name := proxy.Host + "/sig/twice:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
	proxy.SetRate(1 << 20)
	cleaning, uploading := make(chan struct{}), make(chan struct{})
	var cleanOnce, putOnce sync.Once
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		switch r.Method {
		case http.MethodPut:
			putOnce.Do(func() { close(uploading) })
		case http.MethodDelete:
			cleanOnce.Do(func() { close(cleaning) })
			return faultproxy.Fault{Delay: 30 * time.Second}
		}
		return faultproxy.Fault{}
	})

	cmd, stderr := startPush(t, root, name)
	waitUpload(t, uploading, stderr)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cleaning:
	case <-time.After(2 * time.Second):
		t.Fatalf("no upload session DELETE after the first SIGINT:\n%s", stderr.String())
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit after two SIGINTs: %v\n%s", err, stderr.String())
	}
	if took > 500*time.Millisecond {
		t.Fatalf("exited %s after the second SIGINT, want at once", took)
	}
	proxy.SetRule(nil)
	proxy.SetRate(0)
	if r := ctrpush(t, root, "push", name); r.code != 0 {
		t.Fatalf("re-run after two interrupts: exit %d, %s", r.code, r.stderr)
	}
	assertPushed(t, reg, "sig/twice", "1.0", img.Target.Digest)
}

// startPush starts `ctrpush push` of name on root (plain progress to a
// buffer); the test ends it.
func startPush(t *testing.T, root, name string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, ctrpushBin, "--root", root, "push", "--progress", "plain", name)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stderr
}

// waitUpload waits until a blob's PUT has reached the proxy: an upload
// session exists and its body is flowing.
func waitUpload(t *testing.T, uploading <-chan struct{}, stderr *lockedBuffer) {
	t.Helper()
	select {
	case <-uploading:
	case <-time.After(20 * time.Second):
		t.Fatalf("the upload never started:\n%s", stderr.String())
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
