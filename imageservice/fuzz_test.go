package imageservice

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/store"
)

// Platform strings from users: an error that is a ReferenceError, or a
// platform; never a panic.
func FuzzPlatformOption(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm64/v8", "windows/amd64:10.0.17763", "", "/", "linux//", "a/b/c/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var o transferOptions
		if err := WithPlatforms(s)(&o); err != nil {
			var re *ReferenceError
			if !errors.As(err, &re) {
				t.Fatalf("WithPlatforms(%q): %v is not a ReferenceError", s, err)
			}
		}
	})
}

// Names in archives: a normalized name, "", or an error; never a panic.
func FuzzImportName(f *testing.F) {
	for _, s := range []string{"1.0", "docker.io/library/alpine:3", "example.com/a/b:c", "UPPER", "a:b:c", ""} {
		f.Add(s, s, "example.com/base")
	}
	f.Fuzz(func(t *testing.T, imageName, refName, base string) {
		a := map[string]string{}
		if imageName != "" {
			a["io.containerd.image.name"] = imageName
		}
		if refName != "" {
			a["org.opencontainers.image.ref.name"] = refName
		}
		_, _ = importName(a, base)
	})
}

// References given to push (source and destination) on an empty store: a
// ReferenceError naming which one, an ImageNotFoundError, or no jobs;
// never a panic.
func FuzzPushReference(f *testing.F) {
	for _, s := range [][2]string{
		{"alpine:3", ""}, {"example.com/a/b:c", "example.com/d"}, {"example.com/a", "example.com/d:1"},
		{"a@sha256:" + strings.Repeat("0", 64), ""}, {"UPPER:1", ""}, {"a:b:c", ""}, {"", ""}, {"x:1", "y@sha256:1"}, {"x:1", "a/b,c/d:2,a/b:1"},
	} {
		f.Add(s[0], s[1])
	}
	st, err := store.OpenEmbedded(context.Background(), f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	svc, err := New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), WithNamespace("fuzz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, source, dest string) {
		var dests []string
		if dest != "" {
			dests = strings.Split(dest, ",") // several destinations
		}
		jobs, err := svc.pushJobs(svc.withNamespace(context.Background()), source, dests)
		var re *ReferenceError
		var nf *ImageNotFoundError
		switch {
		case err == nil:
			if len(jobs) != 0 {
				t.Fatalf("pushJobs(%q, %q) found %d images in an empty store", source, dest, len(jobs))
			}
		case errors.As(err, &re):
			if re.What != "source" && re.What != "destination" {
				t.Fatalf("pushJobs(%q, %q): ReferenceError about %q", source, dest, re.What)
			}
		case errors.As(err, &nf):
		default:
			t.Fatalf("pushJobs(%q, %q): %v is neither a ReferenceError nor an ImageNotFoundError", source, dest, err)
		}
	})
}
