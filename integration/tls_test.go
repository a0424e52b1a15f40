package integration

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// issue makes a certificate signed by parent (self-signed when nil).
func issue(t *testing.T, cn string, parent *registrytest.CertPair, server, client bool) *registrytest.CertPair {
	t.Helper()
	c, err := registrytest.Issue(cn, parent, server, client)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A registry with a certificate from a private CA that also requires a
// client certificate: untrusted → a clear error saying how to trust the CA;
// the CA in hosts.toml but no client certificate → refused; both → pushed.
func TestTLSThroughHostsToml(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := issue(t, "ctrpush test CA", nil, false, false)
	srv := issue(t, "127.0.0.1", ca, true, false)
	cli := issue(t, "ctrpush client", ca, false, true)
	caFile := writeFile(t, filepath.Join(dir, "ca.pem"), ca.PEM)
	reg := registrytest.Start(t,
		"-tls-cert", writeFile(t, filepath.Join(dir, "server.pem"), srv.PEM),
		"-tls-key", writeFile(t, filepath.Join(dir, "server-key.pem"), srv.KeyPEM),
		"-tls-client-ca", caFile)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	clientPair, err := tls.X509KeyPair(cli.PEM, cli.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	reg.Scheme = "https"
	reg.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientPair}}}}

	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 41})
	name := reg.Host + "/tls/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))

	hostsDir := t.TempDir()
	hostDir := filepath.Join(hostsDir, reg.Host)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := func(extra string) {
		writeFile(t, filepath.Join(hostDir, "hosts.toml"), []byte("server = \"https://"+reg.Host+"\"\n\n[host.\"https://"+reg.Host+"\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n"+extra))
	}
	push := func(dest string) result {
		return ctrpush(t, root, "--hosts-dir", hostsDir, "push", name, reg.Host+"/tls/"+dest+":1.0")
	}

	toml("")
	r := push("untrusted")
	if r.code != 1 || !strings.Contains(r.stderr, "is not trusted") || !strings.Contains(r.stderr, "hosts.toml") {
		t.Fatalf("push to an untrusted registry: exit %d, %s", r.code, r.stderr)
	}

	writeFile(t, filepath.Join(hostDir, "ca.pem"), ca.PEM)
	toml("  ca = \"ca.pem\"\n")
	if r := push("nocert"); r.code != 1 {
		t.Fatalf("push without the client certificate the registry requires: exit %d, %s", r.code, r.stderr)
	}

	writeFile(t, filepath.Join(hostDir, "client.pem"), cli.PEM)
	writeFile(t, filepath.Join(hostDir, "client-key.pem"), cli.KeyPEM)
	toml("  ca = \"ca.pem\"\n  client = [[\"client.pem\", \"client-key.pem\"]]\n")
	if r := push("ok"); r.code != 0 {
		t.Fatalf("push with CA and client certificate: exit %d, %s", r.code, r.stderr)
	}
	assertPushed(t, reg, "tls/ok", "1.0", img.Target.Digest)

	// --insecure-registry skips verification (the client certificate is
	// still needed: hosts.toml gives it).
	toml("  client = [[\"client.pem\", \"client-key.pem\"]]\n")
	if r := ctrpush(t, root, "--hosts-dir", hostsDir, "--insecure-registry", reg.Host, "push", name, reg.Host+"/tls/insecure:1.0"); r.code != 0 {
		t.Fatalf("push with --insecure-registry: exit %d, %s", r.code, r.stderr)
	}
	assertPushed(t, reg, "tls/insecure", "1.0", img.Target.Digest)
}

// --insecure-registry tries HTTPS without verification first and falls
// back to HTTP when the registry does not speak TLS.
func TestInsecureRegistryFallsBackToHTTP(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 42})
	name := reg.Host + "/insecure/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
	if r := ctrpush(t, root, "--insecure-registry", reg.Host, "push", name); r.code != 0 {
		t.Fatalf("push: exit %d, %s", r.code, r.stderr)
	}
	assertPushed(t, reg, "insecure/app", "1.0", img.Target.Digest)
}

// A mirror without the push capability in hosts.toml is never pushed to:
// the push goes to the server.
func TestMirrorWithoutPushIsNotPushedTo(t *testing.T) {
	t.Parallel()
	server := registrytest.Start(t)
	mirror := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 43})
	name := server.Host + "/mirrored/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
	hostsDir := t.TempDir()
	hostDir := filepath.Join(hostsDir, server.Host)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(hostDir, "hosts.toml"), []byte("server = \"http://"+server.Host+"\"\n\n[host.\"http://"+mirror.Host+"\"]\n  capabilities = [\"pull\", \"resolve\"]\n"))
	mirror.Reset(t)
	if r := ctrpush(t, root, "--hosts-dir", hostsDir, "push", name); r.code != 0 {
		t.Fatalf("push: exit %d, %s", r.code, r.stderr)
	}
	assertPushed(t, server, "mirrored/app", "1.0", img.Target.Digest)
	for _, r := range mirror.Requests(t) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			t.Fatalf("the pull-only mirror got %s %s", r.Method, r.Path)
		}
	}
	if tags := mirror.Tags(t, "mirrored/app"); tags != nil {
		t.Fatalf("the mirror has tags %v", tags)
	}
}
