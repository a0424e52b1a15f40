package imageservice

import (
	"errors"
	"testing"
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

// Retry-After values from registries: a duration ≥ 0, never a panic.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"2", "0", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "", "999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter(s); d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %s", s, d)
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
