package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestToolInstallsLeaveNoTempDirs: make test's tool builds run through
// hack/go-install.sh, which removes its temporary directory whether the
// build succeeds or fails; the Makefile has no bare `mktemp -d` left.
func TestToolInstallsLeaveNoTempDirs(t *testing.T) {
	t.Parallel()
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`mktemp`).Find(makefile); m != nil {
		t.Errorf("the Makefile makes temporary directories of its own; use hack/go-install.sh")
	}
	if n := len(regexp.MustCompile(`hack/go-install\.sh`).FindAll(makefile, -1)); n < 5 {
		t.Errorf("the Makefile installs %d tools through hack/go-install.sh, want 5 (containerd, cosign, oras, crane, staticcheck)", n)
	}

	// A stand-in for go that records where it ran and what GOBIN was, then
	// succeeds or fails.
	dir := t.TempDir()
	fake := filepath.Join(dir, "go")
	script := "#!/bin/sh\npwd > \"$RECORD\"\necho \"GOBIN=$GOBIN GOFLAGS=$GOFLAGS $*\" >> \"$RECORD\"\nexit $FAKE_EXIT\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, exit := range []string{"0", "3"} {
		tmp := t.TempDir()
		record := filepath.Join(dir, "record-"+exit)
		cmd := exec.Command("../hack/go-install.sh", "/opt/bin", "example.com/tool@v1.0.0")
		cmd.Env = append(os.Environ(), "GO="+fake, "TMPDIR="+tmp, "RECORD="+record, "FAKE_EXIT="+exit, "GOFLAGS=-mod=vendor")
		out, err := cmd.CombinedOutput()
		if (exit == "0") != (err == nil) {
			t.Fatalf("go exiting %s: go-install.sh returned %v\n%s", exit, err, out)
		}
		rec, err := os.ReadFile(record)
		if err != nil {
			t.Fatalf("the stand-in go did not run: %v", err)
		}
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(tmp) + `/ctrpush-go-install\.\w+\nGOBIN=/opt/bin GOFLAGS= install example.com/tool@v1.0.0\n$`).Match(rec) {
			t.Errorf("go ran as:\n%s", rec)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("go exiting %s left %d entries in TMPDIR", exit, len(left))
		}
	}
}
