package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Flag values that would push or pull something else than asked, or in
// thousands of requests, are bad usage (exit 2) before anything is done:
// the message names the flag, the value and the form it takes.
func TestBadPlatformAndChunkSizeAreUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"push", "--platform", "", "127.0.0.1:1/a:1"}, []string{`--platform ""`, "--platform linux/amd64"}},
		{[]string{"push", "--platform", "linux/amd64,", "127.0.0.1:1/a:1"}, []string{`--platform "linux/amd64,"`, "empty platform"}},
		{[]string{"pull", "--platform", "", "127.0.0.1:1/a:1"}, []string{`--platform ""`, "--platform linux/amd64"}},
		{[]string{"pull", "--platform", ",", "127.0.0.1:1/a:1"}, []string{`--platform ","`, "empty platform"}},
		{[]string{"push", "--chunk-size", "100", "127.0.0.1:1/a:1"}, []string{`--chunk-size "100"`, "at least 64KiB", "--chunk-size 5MiB"}},
		{[]string{"push", "--chunk-size", "ghcr.io=64000", "127.0.0.1:1/a:1"}, []string{`--chunk-size "ghcr.io=64000"`, "at least 64KiB"}},
		{[]string{"push", "--chunk-size", "=5MiB", "127.0.0.1:1/a:1"}, []string{`--chunk-size "=5MiB"`, "HOST=SIZE", "--chunk-size 5MiB"}},
		{[]string{"push", "--chunk-size", "https://ghcr.io=4MiB", "127.0.0.1:1/a:1"}, []string{`"https://ghcr.io" is no registry host`, "--chunk-size ghcr.io=4MiB"}},
		{[]string{"push", "--chunk-size", "5 mebibytes", "127.0.0.1:1/a:1"}, []string{`--chunk-size "5 mebibytes"`, "--chunk-size 5MiB"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"--root", t.TempDir()}, tc.args...), strings.NewReader(""), &stdout, &stderr)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s", code, exitUsage, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Fatalf("stderr does not say %q:\n%s", w, stderr.String())
				}
			}
		})
	}
	// The smallest chunk and a named host are taken.
	for _, v := range []string{"64KiB", "ghcr.io=4MiB", "127.0.0.1:5000=1MiB"} {
		if _, _, err := parseChunkSize(v); err != nil {
			t.Errorf("--chunk-size %s: %v", v, err)
		}
	}
}
