package registry

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Retry-After values from registries: a duration ≥ 0, never a panic.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"2", "0", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "", "999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d := ParseRetryAfter(s); d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = %s", s, d)
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

// The response-header timeout is generous by default (containerd's 30 s
// breaks the commit of large blobs) and configurable.
func TestResponseHeaderTimeout(t *testing.T) {
	for _, tc := range []struct {
		set, want time.Duration
	}{{0, DefaultResponseHeaderTimeout}, {45 * time.Second, 45 * time.Second}} {
		hosts, err := RegistryHosts(HostsConfig{ResponseHeaderTimeout: tc.set})("registry.example.com")
		if err != nil {
			t.Fatal(err)
		}
		tr, ok := hosts[0].Client.Transport.(*http.Transport)
		if !ok || tr.ResponseHeaderTimeout != tc.want {
			t.Fatalf("response header timeout %v, want %v", tr.ResponseHeaderTimeout, tc.want)
		}
	}
}
