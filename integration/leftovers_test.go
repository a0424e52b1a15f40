package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `ctrpush serve --listen unix://PATH` on a regular file exits 1 with an
// error naming the path and what to do, and leaves the file as it was.
func TestServeLeavesAFileAtTheSocketPath(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "ctrpush.sock")
	if err := os.WriteFile(file, []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ctrpush(t, t.TempDir(), "serve", "--listen", "unix://"+file)
	if r.code != 1 || !strings.Contains(r.stderr, file+" is a regular file, not a socket") || !strings.Contains(r.stderr, "listen on another path") {
		t.Fatalf("serve on a regular file: exit %d, %s; want 1 and an error naming the file", r.code, r.stderr)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "not a socket" {
		t.Fatalf("the file at the socket path: %q, %v; want it untouched", b, err)
	}
}
