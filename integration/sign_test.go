package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testenv"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/sign/cosign"
	"github.com/ctrpush/ctrpush/sign/notation"
)

// Tests of push --sign (issue 26), each signature checked by the real
// verifier: `cosign verify --key` and `notation verify`.

// tool runs a verifier with env (HOME in a temporary directory, so
// nothing is written to the user's) and returns its combined output and
// whether it exited 0.
func tool(t *testing.T, env []string, bin string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), env...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return string(out), err == nil
}

// cosignKeys makes a cosign key pair with password pw in a new directory
// and returns the private and public key files.
func cosignKeys(t *testing.T, bin, pw string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), bin, "generate-key-pair")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+pw, "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	return filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
}

// sigLayers are the layers of the image under subject's cosign .sig tag.
func sigLayers(t *testing.T, reg *registrytest.Registry, repo string, subject digest.Digest) []ocispec.Descriptor {
	t.Helper()
	_, _, body, ok := reg.Manifest(t, repo, cosign.SignatureTag(subject))
	if !ok {
		t.Fatalf("%s/%s has no %s", reg.Host, repo, cosign.SignatureTag(subject))
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m.Layers
}

func TestSignCosignCLI(t *testing.T) {
	t.Parallel()
	cosignBin := testenv.Tool(t, "CTRPUSH_COSIGN", "cosign verify")
	if cosignBin == "" {
		t.Skip("cosign not built")
	}
	v3, ggcr := registrytest.Start(t), registrytest.StartGGCR(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 32 << 10, Seed: 260})
	src := "example.com/sign/src:1"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", src, "1"))
	key, pub := cosignKeys(t, cosignBin, "secret one")
	otherKey, otherPub := cosignKeys(t, cosignBin, "secret two")
	v3Ref, ggcrRef := v3.Host+"/sign/app:1", ggcr.Host+"/sign/app:1"
	verify := func(ref, pub string) (string, bool) {
		return tool(t, nil, cosignBin, "verify", "--key", pub, "--insecure-ignore-tlog", ref)
	}

	// A wrong password: exit 1, naming the key, and not one request.
	v3.Reset(t)
	r := ctrpushEnv(t, []string{"COSIGN_PASSWORD=wrong"}, root, "push", "--sign", "cosign", "--key", key, src, v3Ref)
	if r.code != 1 || !strings.Contains(r.stderr, key) || !strings.Contains(r.stderr, "password") {
		t.Fatalf("wrong password: exit %d, want 1 naming the key and the password:\n%s", r.code, r.stderr)
	}
	if reqs := v3.Requests(t); len(reqs) != 0 {
		t.Fatalf("a push with a key it could not open sent %d request(s): %+v", len(reqs), reqs)
	}
	// No password at all, no terminal: exit 1, saying how to give it.
	r = ctrpush(t, root, "push", "--sign", "cosign", "--key", key, src, v3Ref)
	if r.code != 1 || !strings.Contains(r.stderr, "COSIGN_PASSWORD") {
		t.Fatalf("no password: exit %d, want 1 naming COSIGN_PASSWORD:\n%s", r.code, r.stderr)
	}

	// Both registries in one push: signed once, verified at each.
	v3.Reset(t)
	meta := filepath.Join(t.TempDir(), "pushed.json")
	r = ctrpushEnv(t, []string{"COSIGN_PASSWORD=secret one"}, root, "push", "--sign", "cosign", "--key", key, "--metadata-file", meta, src, v3Ref, ggcrRef)
	if r.code != 0 {
		t.Fatalf("push --sign cosign: exit %d\n%s", r.code, r.stderr)
	}
	for _, d := range readPushMetadata(t, meta).Destinations {
		sigTag := "tag " + cosign.SignatureTag(img.Target.Digest)
		if len(d.Signatures) != 1 || d.Signatures[0].Format != "cosign" || d.Signatures[0].Where != sigTag || d.Signatures[0].Manifest == "" {
			t.Fatalf("metadata of %s: signatures %+v, want one cosign signature pushed under %s", d.Reference, d.Signatures, sigTag)
		}
	}
	if n := strings.Count(r.stderr, "Signed "+img.Target.Digest.String()); n != 1 {
		t.Fatalf("signed %d times, want once for both destinations:\n%s", n, r.stderr)
	}
	for _, ref := range []string{v3Ref, ggcrRef} {
		if out, ok := verify(ref, pub); !ok {
			t.Fatalf("cosign verify --key %s %s failed:\n%s", pub, ref, out)
		}
		if out, ok := verify(ref, otherPub); ok {
			t.Fatalf("cosign verify accepted another key's public key at %s:\n%s", ref, out)
		}
	}
	// The signature went before the tag moved.
	sigPut, tagPut := -1, -1
	for i, q := range v3.Requests(t) {
		if q.Method != http.MethodPut {
			continue
		}
		switch q.Path {
		case "/v2/sign/app/manifests/" + cosign.SignatureTag(img.Target.Digest):
			sigPut = i
		case "/v2/sign/app/manifests/1":
			tagPut = i
		}
	}
	if sigPut < 0 || tagPut < 0 || sigPut > tagPut {
		t.Fatalf("signature PUT at request %d, tag PUT at %d: the signature must go first", sigPut, tagPut)
	}

	// A re-push adds no second signature.
	r = ctrpushEnv(t, []string{"COSIGN_PASSWORD=secret one"}, root, "push", "--sign", "cosign", "--key", key, src, v3Ref)
	if r.code != 0 || !strings.Contains(r.stderr, "already there") {
		t.Fatalf("re-push: exit %d, want 0 saying the signature is there:\n%s", r.code, r.stderr)
	}
	if n := len(sigLayers(t, v3, "sign/app", img.Target.Digest)); n != 1 {
		t.Fatalf("after a re-push the .sig image has %d signatures, want 1", n)
	}

	// A foreign signature under the .sig tag (cosign's own, another key)
	// is kept: both verify.
	const other = "sign/other:1"
	mustCtrpush(t, root, "push", src, v3.Host+"/"+other)
	if out, ok := tool(t, []string{"COSIGN_PASSWORD=secret two"}, cosignBin, "sign", "--key", otherKey, "--tlog-upload=false", "--yes",
		v3.Host+"/sign/other@"+img.Target.Digest.String()); !ok {
		t.Fatalf("cosign sign: %s", out)
	}
	r = ctrpushEnv(t, []string{"COSIGN_PASSWORD=secret one"}, root, "push", "--sign", "cosign", "--key", key, src, v3.Host+"/"+other)
	if r.code != 0 {
		t.Fatalf("push --sign over cosign's signature: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(sigLayers(t, v3, "sign/other", img.Target.Digest)); n != 2 {
		t.Fatalf("the .sig image has %d signatures, want cosign's and ours", n)
	}
	for _, p := range []string{pub, otherPub} {
		if out, ok := verify(v3.Host+"/"+other, p); !ok {
			t.Fatalf("cosign verify --key %s after the merge failed:\n%s", p, out)
		}
	}

	// The dry run says what would be signed and where; it sends nothing
	// but reads.
	v3.Reset(t)
	r = ctrpushEnv(t, []string{"COSIGN_PASSWORD=secret one"}, root, "push", "--dry-run", "--sign", "cosign", "--key", key, src, v3.Host+"/sign/dry:1")
	want := "1: would sign " + img.Target.Digest.String() + " with cosign key " + key + ", the signature as tag " + cosign.SignatureTag(img.Target.Digest)
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("dry run: exit %d, want %q:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	for _, q := range v3.Requests(t) {
		if q.Method != http.MethodGet && q.Method != http.MethodHead {
			t.Fatalf("the dry run sent %s %s", q.Method, q.Path)
		}
	}
}

// testChain writes a CA certificate and a code-signing certificate it
// issued, with the signing key, as notation wants them: the key file, the
// chain file (signing certificate first) and the CA file.
func testChain(t *testing.T, cn string) (keyFile, chainFile, caFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn + " CA", Organization: []string{"ctrpush tests"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: []string{"ctrpush tests"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(12 * time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, chainFile, caFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "chain.pem"), filepath.Join(dir, "ca.pem")
	write := func(path string, blocks ...*pem.Block) {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(keyFile, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	write(chainFile, &pem.Block{Type: "CERTIFICATE", Bytes: leafDER}, &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	write(caFile, &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return keyFile, chainFile, caFile
}

// notationConfig makes a notation configuration (XDG_CONFIG_HOME) that
// trusts the CA in caFile for every registry, and returns its environment.
func notationConfig(t *testing.T, bin, caFile string) []string {
	t.Helper()
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir()}
	if out, ok := tool(t, env, bin, "cert", "add", "--type", "ca", "--store", "tests", caFile); !ok {
		t.Fatalf("notation cert add: %s", out)
	}
	policy := filepath.Join(t.TempDir(), "policy.json")
	p := `{"version":"1.0","trustPolicies":[{"name":"tests","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:tests"],"trustedIdentities":["*"]}]}`
	if err := os.WriteFile(policy, []byte(p), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, ok := tool(t, env, bin, "policy", "import", "--force", policy); !ok {
		t.Fatalf("notation policy import: %s", out)
	}
	return env
}

func TestSignNotationCLI(t *testing.T) {
	t.Parallel()
	notationBin := testenv.Tool(t, "CTRPUSH_NOTATION", "notation verify")
	if notationBin == "" {
		t.Skip("notation not built")
	}
	keyFile, chainFile, caFile := testChain(t, "ctrpush signer")
	_, _, otherCA := testChain(t, "someone else")
	trusting, trustingOther := notationConfig(t, notationBin, caFile), notationConfig(t, notationBin, otherCA)
	img := testimage.MustNew(testimage.Spec{Layers: 2, LayerSize: 32 << 10, Seed: 261})
	for _, c := range []struct {
		name string
		api  bool
	}{{"distribution-tag-schema", false}, {"ggcr-referrers-api", true}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.Start(t)
			if c.api {
				reg = registrytest.StartGGCR(t, "-referrers")
			}
			root := t.TempDir()
			src := "example.com/sign/n:1"
			mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", src, "1"))
			ref := reg.Host + "/sign/n:1"
			byDigest := reg.Host + "/sign/n@" + img.Target.Digest.String()
			r := mustCtrpush(t, root, "push", "--sign", "notation", "--key", keyFile, "--cert", chainFile, src, ref)
			if !strings.Contains(r.stderr, "Signature (notation)") {
				t.Fatalf("no signature line:\n%s", r.stderr)
			}
			if out, ok := tool(t, trusting, notationBin, "verify", "--insecure-registry", byDigest); !ok {
				t.Fatalf("notation verify with the signing CA trusted failed:\n%s", out)
			}
			if out, ok := tool(t, trustingOther, notationBin, "verify", "--insecure-registry", byDigest); ok {
				t.Fatalf("notation verify trusting another CA passed:\n%s", out)
			}
			count := func() int {
				refs, ok := reg.Referrers(t, "sign/n", img.Target.Digest)
				if !ok && !c.api { // the tag schema's index
					_, _, body, found := reg.Manifest(t, "sign/n", strings.Replace(img.Target.Digest.String(), ":", "-", 1))
					if !found {
						t.Fatal("no referrers API and no tag-schema index")
					}
					var idx ocispec.Index
					if err := json.Unmarshal(body, &idx); err != nil {
						t.Fatal(err)
					}
					refs = idx.Manifests
				}
				return len(slices.DeleteFunc(refs, func(d ocispec.Descriptor) bool { return d.ArtifactType != notation.ArtifactType }))
			}
			if n := count(); n != 1 {
				t.Fatalf("%d notation signatures listed, want 1", n)
			}
			// A re-push finds the signature there and adds none.
			r = mustCtrpush(t, root, "push", "--sign", "notation", "--key", keyFile, "--cert", chainFile, src, ref)
			if !strings.Contains(r.stderr, "already there") {
				t.Fatalf("re-push does not say the signature is there:\n%s", r.stderr)
			}
			if n := count(); n != 1 {
				t.Fatalf("after a re-push %d notation signatures are listed, want 1", n)
			}
		})
	}
}

func TestSignBadUsage(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	keyFile, chainFile, _ := testChain(t, "usage")
	_, otherChain, _ := testChain(t, "mismatch")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--sign", "cosign"}, 2, "give each --sign its --key"},
		{[]string{"--sign", "gpg", "--key", keyFile}, 2, `--sign "gpg": say cosign or notation`},
		{[]string{"--key", keyFile}, 2, "--key and --cert go with --sign"},
		{[]string{"--sign", "notation", "--key", keyFile}, 1, "--cert"},
		{[]string{"--sign", "notation", "--key", keyFile, "--cert", otherChain}, 1, otherChain},
		{[]string{"--sign", "cosign", "--key", chainFile}, 1, "not cosign's encrypted private key"},
		{[]string{"--sign", "notation", "--key", "no-such-key", "--cert", chainFile}, 1, "no-such-key"},
	} {
		r := ctrpushEnv(t, []string{"XDG_CONFIG_HOME=" + t.TempDir(), "COSIGN_PASSWORD=x"}, root,
			append(append([]string{"push"}, c.args...), "example.com/none:1", "127.0.0.1:1/none:1")...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("push %v: exit %d, want %d with %q:\n%s", c.args, r.code, c.code, c.want, r.stderr)
		}
	}
}

// Without COSIGN_PASSWORD, on a terminal, the password is asked for (as
// cosign asks) and not echoed; the push then signs.
func TestSignCosignPasswordPrompt(t *testing.T) {
	t.Parallel()
	cosignBin := testenv.Tool(t, "CTRPUSH_COSIGN", "cosign generate-key-pair")
	if cosignBin == "" {
		t.Skip("cosign not built")
	}
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Layers: 1, LayerSize: 4 << 10, Seed: 262})
	src := "example.com/sign/tty:1"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", src, "1"))
	key, _ := cosignKeys(t, cosignBin, "typed secret")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrpushBin, "--root", root, "push", "--progress", "plain", "--sign", "cosign", "--key", key, src, reg.Host+"/sign/tty:1")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(v string) bool { return strings.HasPrefix(v, "COSIGN_PASSWORD=") })
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var screen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(screen.String(), "Enter password for private key "+key) {
		n, err := ptmx.Read(buf)
		if err != nil {
			t.Fatalf("no password prompt (%v):\n%s", err, screen.String())
		}
		screen.Write(buf[:n])
	}
	if _, err := ptmx.Write([]byte("typed secret\r")); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := ptmx.Read(buf)
		screen.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("push with the password typed: %v\n%s", err, screen.String())
	}
	if strings.Contains(screen.String(), "typed secret") {
		t.Fatalf("the password was echoed:\n%s", screen.String())
	}
	if _, _, _, ok := reg.Manifest(t, "sign/tty", cosign.SignatureTag(img.Target.Digest)); !ok {
		t.Fatalf("no signature pushed:\n%s", screen.String())
	}
}
