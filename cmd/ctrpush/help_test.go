package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/server"
)

func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), append(args, "--help"), strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("%v --help: exit %d\n%s", args, code, errb.String())
	}
	return out.String()
}

// TestHelpIsBuiltFromTheCode: the help states what the code does, from
// the same tables and constants: serve's list of endpoints is the
// server's route table (and the README's table names each one), and
// push's --max-concurrent-uploads states the bytes bound the push uses.
func TestHelpIsBuiltFromTheCode(t *testing.T) {
	serve := helpOf(t, "serve")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	eps := server.Endpoints()
	if len(eps) < 14 {
		t.Fatalf("the server lists %d endpoints", len(eps))
	}
	for _, e := range eps {
		line := strings.Join(e.Methods, ",")
		if !strings.Contains(serve, line) || !strings.Contains(serve, e.Path+" ") || !strings.Contains(serve, e.What) {
			t.Errorf("serve --help does not list %v %s (%s):\n%s", e.Methods, e.Path, e.What, serve)
		}
		if !strings.Contains(string(readme), " "+e.Path) {
			t.Errorf("README.md's serve table does not name %s", e.Path)
		}
	}
	for _, wrong := range []string{"push API", "Anything else answers 404"} {
		if strings.Contains(serve, wrong) {
			t.Errorf("serve --help still says %q", wrong)
		}
	}
	if root := helpOf(t); !strings.Contains(root, "serve       Serve the Docker Engine image API") || !strings.Contains(root, "version     ") {
		t.Errorf("the command list:\n%s", root)
	}
	push := strings.Join(strings.Fields(helpOf(t, "push")), " ")
	if want := sizeText(imageservice.DefaultMaxBytesInFlight) + " of blobs are in flight"; !strings.Contains(push, want) {
		t.Errorf("push --help does not say %q", want)
	}
}
