package server

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/testenv"
)

// Listen on a unix path replaces only a stale socket (a socket file
// nobody listens on). A regular file, a directory, and a socket a process
// listens on without speaking HTTP are refused with an error naming the
// path, and left as they were.
func TestListenReplacesOnlyAStaleSocket(t *testing.T) {
	dir := t.TempDir()

	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty-dir")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	// A live socket whose server never answers HTTP (a gRPC daemon, say).
	live := filepath.Join(dir, "live.sock")
	ll, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	go func() {
		for {
			c, err := ll.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()

	for _, tc := range []struct{ path, want string }{
		{file, "is a regular file, not a socket"},
		{empty, "is a directory, not a socket"},
		{live, "another server answers there"},
	} {
		_, _, err := Listen("unix://" + tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "another") {
			t.Errorf("Listen on %s: %v; want an error naming it, saying %q and what to do", tc.path, err, tc.want)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file: %q, %v; want it untouched", b, err)
	}
	if fi, err := os.Stat(empty); err != nil || !fi.IsDir() {
		t.Errorf("the directory: %v; want it still there", err)
	}
	if c, err := net.Dial("unix", live); err != nil {
		t.Errorf("the live socket no longer answers: %v", err)
	} else {
		c.Close()
	}

	// A socket left by a server that is gone (closed without unlinking,
	// as after SIGKILL) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	testenv.StaleSocket(t, stale)
	l, _, err := Listen("unix://" + stale)
	if err != nil {
		t.Fatalf("Listen on a stale socket: %v", err)
	}
	l.Close()
}
