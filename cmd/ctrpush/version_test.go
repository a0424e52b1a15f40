package main

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOfBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/ctrpush/ctrpush", Version: "v0.0.0-20261204234027-750b27598e9f+dirty"},
		Deps: []*debug.Module{
			{Path: "github.com/containerd/platforms", Version: "v1.0.0"},
			{Path: containerdModule, Version: "v2.4.2"},
		},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "750b27598e9fa8cd3e42dd8f0d51f84ddf04f4c4"},
			{Key: "vcs.time", Value: "2026-12-04T23:40:27Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	v := versionOf(bi)
	want := "ctrpush version v0.0.0-20261204234027-750b27598e9f+dirty, revision 750b27598e9f (modified), " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ", containerd v2.4.2"
	if got := v.short(); got != want {
		t.Errorf("short:\n got %s\nwant %s", got, want)
	}
	var b bytes.Buffer
	v.write(&b)
	for _, line := range []string{
		"ctrpush:    v0.0.0-20261204234027-750b27598e9f+dirty\n",
		"revision:   750b27598e9fa8cd3e42dd8f0d51f84ddf04f4c4 (2026-12-04T23:40:27Z, modified)\n",
		"go:         " + runtime.Version() + " ",
		"containerd: v2.4.2 (library)\n",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("version output lacks %q:\n%s", line, b.String())
		}
	}

	// A release: the tag, no revision line; a replaced containerd says so.
	bi = &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Deps: []*debug.Module{{Path: containerdModule, Version: "v2.4.2", Replace: &debug.Module{Path: "../containerd", Version: ""}}}}
	v = versionOf(bi)
	b.Reset()
	v.write(&b)
	if strings.Contains(b.String(), "revision") || !strings.HasPrefix(b.String(), "ctrpush:    v1.2.0\n") || !strings.Contains(b.String(), "containerd: ../containerd ") {
		t.Errorf("release version output:\n%s", b.String())
	}
	if v := versionOf(nil); v.Version != "unknown" || v.Containerd != "unknown" {
		t.Errorf("no build info: %+v", v)
	}
}

func TestVersionCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--root", root, "version"}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("version: exit %d\n%s", code, errb.String())
	}
	for _, want := range []string{"ctrpush:    ", "go:         " + runtime.Version(), "containerd: ", "store:      embedded at " + root + "\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
	// The store is not opened: nothing is created under --root.
	if _, err := filepath.Glob(filepath.Join(root, "*")); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "*")); len(m) != 0 {
		t.Errorf("version created %v", m)
	}

	out.Reset()
	if code := run(context.Background(), []string{"--version"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "ctrpush version ") || strings.Count(out.String(), "\n") != 1 || !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("--version: exit %d, %q", code, out.String())
	}

	// A daemon that does not answer: the client's lines, then exit 1
	// naming the socket.
	out.Reset()
	errb.Reset()
	sock := filepath.Join(t.TempDir(), "none.sock")
	code = run(context.Background(), []string{"--address", sock, "version"}, strings.NewReader(""), &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "ctrpush:    ") || !strings.Contains(out.String(), "store:      containerd daemon at "+sock+" (no answer)") || !strings.Contains(errb.String(), sock) {
		t.Errorf("version on a missing daemon: exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
}
