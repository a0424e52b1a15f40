package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNewcomerPath runs what a new user runs first: make demo's script,
// its output piped (not a terminal), then the README's "first push" block
// as written (paths and the port moved into a temporary directory).
func TestNewcomerPath(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")

	demo := exec.Command("bash", "../hack/demo.sh")
	demo.Env = append(os.Environ(), "DEMO_BIN="+bin, "DEMO_DIR="+filepath.Join(tmp, "demo"))
	if raceEnabled {
		// The race build the other tests compiled: no second build of
		// every dependency.
		demo.Env = append(demo.Env, "DEMO_BUILDFLAGS=-race")
	}
	b, err := demo.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("make demo's script: %v\n%s", err, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("the demo writes escape codes to a pipe:\n%q", out)
	}
	// Every command is announced by one sentence saying what it shows.
	lines := strings.Split(out, "\n")
	commands := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "$ ") {
			commands++
			if i == 0 || !strings.HasPrefix(lines[i-1], "# ") || !strings.HasSuffix(lines[i-1], ".") {
				t.Errorf("command %q is not preceded by a sentence", l)
			}
		}
	}
	if commands != 6 {
		t.Errorf("the demo ran %d commands, want 6:\n%s", commands, out)
	}
	// The third push sends nothing and says so in docker's words per kind.
	i := strings.LastIndex(out, "# Push the same image again")
	if i < 0 {
		t.Fatalf("no third push in:\n%s", out)
	}
	third := out[i:]
	m := regexp.MustCompile(`1\.0: digest: sha256:([0-9a-f]{12})`).FindStringSubmatch(third)
	if m == nil {
		t.Fatalf("the third push names no digest:\n%s", third)
	}
	for _, want := range []string{m[1] + ": Index already exists", ": Manifest already exists", ": Config already exists", ": Layer already exists"} {
		if !strings.Contains(third, want) {
			t.Errorf("the third push does not say %q:\n%s", want, third)
		}
	}
	if strings.Contains(third, "Pushed") || strings.Contains(third, "Pushing") || strings.Count(third, " already exists\n") != strings.Count(third, ": Preparing\n") {
		t.Errorf("the third push did not find everything there:\n%s", third)
	}

	// The README's first push, as written.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)\\*\\*Your first push\\*\\*.*?```sh\n(.*?)```").FindSubmatch(readme)
	if block == nil {
		t.Fatal("README.md has no first-push block")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	script := "set -e\ncd " + tmp + "\n"
	for _, line := range strings.Split(strings.TrimSpace(string(block[1])), "\n") {
		line = strings.ReplaceAll(line, "bin/", bin+"/")
		line = strings.ReplaceAll(line, "127.0.0.1:5000", "127.0.0.1:"+port)
		line = strings.ReplaceAll(line, "/tmp/registry", filepath.Join(tmp, "registry"))
		script += line + "\n"
		if strings.HasSuffix(strings.TrimSpace(strings.SplitN(line, "#", 2)[0]), "&") {
			script += "trap 'kill $!' EXIT\nfor i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/" + port + ") 2>/dev/null && break; sleep 0.1; done\n"
		}
	}
	script += bin + "/regls 127.0.0.1:" + port + "\n"
	first := exec.Command("bash", "-c", script)
	first.Env = append(os.Environ(), "HOME="+tmp, "XDG_DATA_HOME="+filepath.Join(tmp, "data"))
	b, err = first.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's first push: %v\nscript:\n%s\noutput:\n%s", err, script, b)
	}
	if !regexp.MustCompile(`(?m)^127\.0\.0\.1:`+port+`/team/app:1\.0 +sha256:[0-9a-f]{64}`).Match(b) || !strings.Contains(string(b), "1.0: digest: sha256:") {
		t.Errorf("after the README's first push the registry holds:\n%s", b)
	}
}
