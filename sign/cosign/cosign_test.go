package cosign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/ctrpush/ctrpush/sign"
)

// cosignPEM makes a cosign private key as cosign writes it: a PKCS #8
// key encrypted with go-securesystemslib under password, in a PEM block
// of type pemType.
func cosignPEM(t *testing.T, pemType, password string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	// Legacy scrypt parameters (cosign v1's; v2 writes Standard, twice
	// the work): Decrypt reads them from the key, and the test is faster.
	enc, err := encrypted.EncryptWithCustomKDFParameters(der, []byte(password), encrypted.Legacy)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: enc})
}

func pw(s string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(s), nil } }

func TestLoadKey(t *testing.T) {
	for _, typ := range []string{pemSigstoreKey, pemCosignKey} {
		if _, err := LoadKey(cosignPEM(t, typ, "pw"), pw("pw")); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
	key := cosignPEM(t, pemSigstoreKey, "pw")
	if _, err := LoadKey(key, pw("other")); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: %v, want ErrWrongPassword", err)
	}
	if _, err := LoadKey([]byte("not pem"), pw("pw")); err == nil || !strings.Contains(err.Error(), "not a PEM file") {
		t.Errorf("not PEM: %v", err)
	}
	other := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})
	if _, err := LoadKey(other, pw("pw")); err == nil || !strings.Contains(err.Error(), `"PRIVATE KEY"`) {
		t.Errorf("another PEM type: %v", err)
	}
	asked := false
	_, _ = LoadKey([]byte("not pem"), func() ([]byte, error) { asked = true; return nil, nil })
	if asked {
		t.Error("the password was asked for a file that is no cosign key")
	}
}

// fakeRegistry holds manifests by tag or digest.
type fakeRegistry map[string][]byte

func (f fakeRegistry) Manifest(_ context.Context, ref string) ([]byte, ocispec.Descriptor, error) {
	b, ok := f[ref]
	if !ok {
		return nil, ocispec.Descriptor{}, nil
	}
	return b, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}, nil
}

func (f fakeRegistry) Referrers(context.Context, digest.Digest) ([]ocispec.Descriptor, error) {
	return nil, nil
}

func TestCosignPlaceMerges(t *testing.T) {
	ctx := context.Background()
	load := func() *Signer {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sv, err := signature.LoadECDSASignerVerifier(k, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		return New(sv, "k")
	}
	mine, theirs := load(), load()
	subject := sign.Subject{Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("image"), Size: 5}, Repository: "127.0.0.1:5000/team/app"}
	tag := SignatureTag(subject.Descriptor.Digest)
	reg := fakeRegistry{}
	place := func(s *Signer) *sign.Placement {
		sig, err := s.Sign(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		p, err := sig.Place(ctx, reg)
		if err != nil {
			t.Fatal(err)
		}
		if p != nil {
			if p.Tag != tag {
				t.Fatalf("placed under %q, want %q", p.Tag, tag)
			}
			reg[tag] = p.Manifest.Data
		}
		return p
	}
	layers := func() []ocispec.Descriptor {
		var m ocispec.Manifest
		if err := json.Unmarshal(reg[tag], &m); err != nil {
			t.Fatal(err)
		}
		return m.Layers
	}
	place(theirs)
	if p := place(mine); p == nil || len(layers()) != 2 {
		t.Fatalf("another key's signature is there: want ours appended, have %d layer(s)", len(layers()))
	}
	// Signed again (ECDSA signatures differ each time): still there.
	if p := place(mine); p != nil {
		t.Fatalf("a second signature of the same payload by the same key was added: %d layers", len(layers()))
	}
	// The payload names the image's digest and repository, as cosign's.
	var pl struct {
		Critical struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			} `json:"identity"`
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	sig, _ := mine.Sign(ctx, subject)
	if err := json.Unmarshal(sig.(*cosignSignature).payload, &pl); err != nil {
		t.Fatal(err)
	}
	if pl.Critical.Image.Digest != subject.Descriptor.Digest.String() || pl.Critical.Identity.DockerReference != subject.Repository ||
		pl.Critical.Type != "cosign container image signature" {
		t.Fatalf("payload %+v", pl)
	}
}
