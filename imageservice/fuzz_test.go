package imageservice

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// References given to push (source and destination) on an empty store: a
// ReferenceError naming which one, an ImageNotFoundError, or no jobs;
// never a panic.
func FuzzPushReference(f *testing.F) {
	for _, s := range [][2]string{
		{"alpine:3", ""}, {"example.com/a/b:c", "example.com/d"}, {"example.com/a", "example.com/d:1"},
		{"a@sha256:" + strings.Repeat("0", 64), ""}, {"UPPER:1", ""}, {"a:b:c", ""}, {"", ""}, {"x:1", "y@sha256:1"},
	} {
		f.Add(s[0], s[1])
	}
	st, err := OpenEmbedded(context.Background(), f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	svc, err := New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), WithNamespace("fuzz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, source, dest string) {
		jobs, err := svc.pushJobs(svc.withNamespace(context.Background()), source, dest)
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

// hosts.toml files: a host list or an error that says which registry's
// configuration failed; never a panic.
func FuzzHostsToml(f *testing.F) {
	for _, s := range []string{
		"server = \"https://registry.example.com\"\n",
		"[host.\"https://mirror.example.com\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
		"[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"push\"]\n  skip_verify = true\n  [host.\"http://127.0.0.1:5000\".header]\n    x-a = \"b\"\n",
		"ca = \"/nonexistent/ca.crt\"\n",
		"client = [[\"/a.crt\", \"/a.key\"]]\n",
		"server = 1\n", "[host.\"\"]\n", "[[[", "",
	} {
		f.Add(s)
	}
	root := f.TempDir()
	dir := filepath.Join(root, "registry.example.com")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, toml string) {
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
		hosts, err := RegistryHosts(HostsConfig{HostsDirs: []string{root}})("registry.example.com")
		if err != nil {
			if !strings.Contains(err.Error(), "registry configuration for registry.example.com") {
				t.Fatalf("hosts.toml %q: error %q does not name the registry", toml, err)
			}
			return
		}
		for _, h := range hosts {
			if h.Host == "" || h.Client == nil {
				t.Fatalf("hosts.toml %q: incomplete host %+v", toml, h)
			}
		}
	})
}
