// Package testenv decides what a test does when a real part it needs (the
// docker CLI, Debian's registry, root for containerd, crane, oras) is not
// on the machine: skip with the fix by default, fail when
// CTRPUSH_REQUIRE_ALL is set, as `make test` sets it, so that CI can never
// pass by running none of those tests.
package testenv

import (
	"net"
	"os"
	"testing"
)

// RequireAll is the variable `make test` sets.
const RequireAll = "CTRPUSH_REQUIRE_ALL"

// Missing skips t, or fails it under CTRPUSH_REQUIRE_ALL, saying what is
// missing and how to get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireAll) != "" {
		t.Fatalf("required by "+RequireAll+": "+format, args...)
	}
	t.Skipf(format, args...)
}

// Tool is the path of a checking tool given in the environment variable
// env (make test builds it and sets it): "" with a log line when it is
// unset, a failure under CTRPUSH_REQUIRE_ALL.
func Tool(t testing.TB, env, what string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		if os.Getenv(RequireAll) != "" {
			t.Fatalf("%s unset: make test builds the tool for %s and sets it", env, what)
		}
		t.Logf("%s skipped: %s unset (make test builds it)", what, env)
	}
	return p
}

// StaleSocket leaves at path the socket file of a server that is gone
// (closed without unlinking, as after SIGKILL): nobody answers there.
func StaleSocket(t testing.TB, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the stale socket file is not there: %v", err)
	}
}
