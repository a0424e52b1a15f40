package integration

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os/exec"
	"path/filepath"
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

// A reader that goes away (`ctrpush push --progress json … | head -2`, or
// progress on stderr piped to `head -1`) does not end the push: it
// finishes, exits with its own status (0), tags the image and leaves no
// lease behind.
func TestClosedOutputDoesNotStopThePush(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		stderr bool // the progress goes to stderr
	}{
		{"json on stdout", []string{"--progress", "json"}, false},
		{"plain on stderr", []string{"--progress", "plain"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.Start(t)
			proxy := faultproxy.Start(t, reg.Host)
			root := t.TempDir()
			img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 4, LayerSize: 256 << 10, Seed: 62})
			name := proxy.Host + "/pipe/app:1.0"
			mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
			var puts atomic.Int32
			proxy.SetRule(func(r *http.Request) faultproxy.Fault {
				if r.Method == http.MethodPut {
					puts.Add(1)
					return faultproxy.Fault{Delay: 150 * time.Millisecond} // still pushing when the reader leaves
				}
				return faultproxy.Fault{}
			})
			cmd := exec.Command(ctrpushBin, append(append([]string{"--root", root, "push"}, tc.args...), name)...)
			var other bytes.Buffer
			pipe, err := cmd.StdoutPipe()
			if tc.stderr {
				cmd.Stdout = &other
				pipe, err = cmd.StderrPipe()
			} else {
				cmd.Stderr = &other
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Read two lines, then go away as head does.
			buf := make([]byte, 1)
			for lines := 0; lines < 2; {
				if _, err := pipe.Read(buf); err != nil {
					t.Fatalf("read: %v", err)
				}
				if buf[0] == '\n' {
					lines++
				}
			}
			closedAt := puts.Load()
			_ = pipe.(interface{ Close() error }).Close()
			err = cmd.Wait()
			if err != nil {
				t.Fatalf("push with its output closed: %v\n%s", err, other.String())
			}
			if closedAt >= int32(len(img.Blobs)) {
				t.Fatalf("the output closed after %d PUTs: the push was over, the test tested nothing", closedAt)
			}
			assertPushed(t, reg, "pipe/app", "1.0", img.Target.Digest)
			if c := countStore(t, root); c.leases != 0 {
				t.Fatalf("%d leases left", c.leases)
			}
		})
	}
}

// dirBytes is the size of the files under dir (0 when it does not exist).
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// SIGKILL mid-push leaves a lease that no process holds any more: the next
// ctrpush to open the store releases it, and removing the image then frees
// its space (before, the lease pinned it for 24 hours).
func TestKilledPushLeaseIsReclaimed(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 4 << 20, Seed: 63})
	name := proxy.Host + "/kill/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
	proxy.SetRate(1 << 20)
	uploading := make(chan struct{})
	var once sync.Once
	proxy.SetRule(func(r *http.Request) faultproxy.Fault {
		if r.Method == http.MethodPut {
			once.Do(func() { close(uploading) })
		}
		return faultproxy.Fault{}
	})
	cmd, stderr := startPush(t, root, name)
	waitUpload(t, uploading, stderr)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	blobs := filepath.Join(root, "content", "blobs")
	if dirBytes(t, blobs) < 8<<20 {
		t.Fatalf("the store holds %d bytes before rmi", dirBytes(t, blobs))
	}
	mustCtrpush(t, root, "rmi", name)
	if c := countStore(t, root); c.leases != 0 || c.content != 0 {
		t.Fatalf("after the kill and rmi the store still has %+v", c)
	}
	if n := dirBytes(t, blobs); n != 0 {
		t.Fatalf("rmi after a killed push left %d bytes of blobs", n)
	}
}

// SIGKILL mid-import (the archive arriving on stdin): the next ctrpush to
// open the store releases the import's lease and its partial ingest.
func TestKilledImportIsReclaimed(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 8 << 20, Seed: 64})
	var tarball bytes.Buffer
	if err := img.WriteOCITar(&tarball, testimage.NameAnnotations("example.com/kill/import:1.0", "1.0")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ctrpushBin, "--root", root, "import", "-")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Most of the archive, then nothing: the import waits mid-blob.
	if _, err := stdin.Write(tarball.Bytes()[:tarball.Len()*3/4]); err != nil {
		t.Fatal(err)
	}
	content := filepath.Join(root, "content")
	deadline := time.Now().Add(20 * time.Second)
	for dirBytes(t, content) < 8<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("the import wrote only %d bytes", dirBytes(t, content))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	left := dirBytes(t, content)
	mustCtrpush(t, root, "images")
	if c := countStore(t, root); c.leases != 0 || c.images != 0 || c.content != 0 {
		t.Fatalf("after a killed import the store has %+v", c)
	}
	if n := dirBytes(t, content); n != 0 {
		t.Fatalf("a killed import left %d bytes (of %d) after the store was opened again", n, left)
	}
}
