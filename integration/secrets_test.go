package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/testimage"
)

// A credential helper that fails: the push and the pull name it and its
// exit status, never what it printed (on stderr too: docker/cli's helper
// client passes the helper's stderr through), and each command asks it
// once for the registry however many requests want credentials.
func TestFailingCredentialHelperAskedOnceAndQuiet(t *testing.T) {
	t.Parallel()
	const user, secret = "pusher", "s3cret-Pa55word"
	const printed = "helper-stderr: password=leaked-by-the-helper"
	reg := basicAuthRegistry(t, user, secret)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 4, Seed: 37})
	name := reg.Host + "/quiet/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))

	bin, calls := t.TempDir(), filepath.Join(t.TempDir(), "calls")
	script := fmt.Sprintf("#!/bin/sh\necho \"$1\" >> %q\necho %q >&2\nexit 1\n", calls, printed)
	writeFile(t, filepath.Join(bin, "docker-credential-leaky"), []byte(script))
	if err := os.Chmod(filepath.Join(bin, "docker-credential-leaky"), 0o755); err != nil {
		t.Fatal(err)
	}
	dc := t.TempDir()
	writeFile(t, filepath.Join(dc, "config.json"), []byte(fmt.Sprintf(`{"credHelpers":{%q:"leaky"}}`, reg.Host)))
	env := []string{"DOCKER_CONFIG=" + dc, "PATH=" + bin + ":" + os.Getenv("PATH")}

	for i, args := range [][]string{{"push", name}, {"pull", name}} {
		r := ctrpushEnv(t, env, root, args...)
		out := r.stdout + r.stderr
		if r.code != 1 || !strings.Contains(r.stderr, "credential helper docker-credential-leaky") || !strings.Contains(r.stderr, "exit status 1") {
			t.Fatalf("%s: exit %d, want 1 and an error naming the helper and its exit status\n%s", args[0], r.code, out)
		}
		if strings.Contains(out, "leaked-by-the-helper") {
			t.Fatalf("%s: the helper's output reached ours:\n%s", args[0], out)
		}
		b, err := os.ReadFile(calls)
		if err != nil {
			t.Fatalf("%s: the helper never ran: %v", args[0], err)
		}
		if got := strings.Count(string(b), "get\n"); got != i+1 {
			t.Fatalf("%s: the helper was asked %d time(s) in all after %d command(s), want once per command", args[0], got, i+1)
		}
	}
}
