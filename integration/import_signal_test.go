package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctrpush/ctrpush/internal/testimage"
)

// `ctrpush import /dev/zero` fails at once: /dev/zero reads as a tar's
// end (two blocks of zeros) with no file before it, so it is no archive,
// and nothing more of it is read.
func TestImportOfDevZeroFailsAtOnce(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrpushBin, "--root", root, "import", "/dev/zero")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var ee *exec.ExitError
	if ctx.Err() != nil {
		t.Fatalf("import /dev/zero still ran after %s (killed)", took)
	}
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "import /dev/zero: not an image archive: no file could be read from it") {
		t.Fatalf("import /dev/zero: %v after %s\n%s\nwant exit 1 saying it is no archive", err, took, stderr.String())
	}
	if c := countStore(t, root); c != (storeCounts{}) {
		t.Fatalf("import /dev/zero left %+v", c)
	}
}

// SIGINT while `ctrpush import FIFO` waits for a writer to open the named
// pipe (open(2) blocks): exit 130 within 2 s, nothing left in the store.
func TestImportWaitingForANamedPipeIsInterrupted(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	fifo := filepath.Join(t.TempDir(), "archive.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, stderr := startImport(t, root, fifo)
	// The signal is sent while a thread of the process waits in openat.
	deadline := time.Now().Add(20 * time.Second)
	for !inSyscall(t, cmd.Process.Pid, syscall.SYS_OPENAT) {
		if time.Now().After(deadline) {
			t.Fatalf("import never waited in open(2) of the named pipe:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	assertInterrupted(t, cmd, stderr, syscall.SIGINT)
	if c := countStore(t, root); c != (storeCounts{}) {
		t.Fatalf("the interrupted import left %+v", c)
	}
}

// SIGTERM while `ctrpush import -` waits for the rest of the archive on
// standard input (the writer stalls mid-blob): exit 130 within 2 s; the
// import's blobs, its partial ingest and its lease are gone.
func TestImportWaitingOnStdinIsInterrupted(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, LayerSize: 4 << 20, Seed: 83})
	var tarball bytes.Buffer
	if err := img.WriteOCITar(&tarball, testimage.NameAnnotations("example.com/sig/import:1.0", "1.0")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrpushBin, "--root", root, "import", "-")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Most of the archive, then nothing: the import waits mid-blob.
	if _, err := stdin.Write(tarball.Bytes()[:tarball.Len()*3/4]); err != nil {
		t.Fatal(err)
	}
	ingest := filepath.Join(root, "content", "ingest")
	deadline := time.Now().Add(20 * time.Second)
	for dirBytes(t, filepath.Join(root, "content", "blobs")) < 4<<20 || dirBytes(t, ingest) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the import wrote %d bytes of blobs, %d of ingest:\n%s", dirBytes(t, filepath.Join(root, "content", "blobs")), dirBytes(t, ingest), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	assertInterrupted(t, cmd, stderr, syscall.SIGTERM)
	if n := dirBytes(t, filepath.Join(root, "content")); n != 0 {
		t.Fatalf("the interrupted import left %d bytes under content/", n)
	}
	if c := countStore(t, root); c != (storeCounts{}) {
		t.Fatalf("the interrupted import left %+v", c)
	}
}

// startImport starts `ctrpush import PATH` on root; the test ends it.
func startImport(t *testing.T, root, path string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, ctrpushBin, "--root", root, "import", path)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stderr
}

// assertInterrupted sends sig once and wants exit 130 within 2 s.
func assertInterrupted(t *testing.T, cmd *exec.Cmd, stderr *lockedBuffer, sig syscall.Signal) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(stderr.String(), "interrupted") {
			t.Fatalf("exit after %s: %v\n%s\nwant 130, interrupted", sig, err, stderr.String())
		}
	case <-time.After(2 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("still running 2 s after %s:\n%s", sig, stderr.String())
	}
}

// inSyscall reports whether a thread of process pid waits in syscall nr
// (/proc/PID/task/TID/syscall starts with the number).
func inSyscall(t *testing.T, pid int, nr uintptr) bool {
	t.Helper()
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatalf("read the threads of %d: %v", pid, err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "syscall"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 && f[0] == strconv.FormatUint(uint64(nr), 10) {
			return true
		}
	}
	return false
}
