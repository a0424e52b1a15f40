// Package cosign makes cosign signatures of the images a push publishes:
// the simple-signing payload, signed with a key cosign generated (or any
// sigstore signer), as a layer of the image under the subject's
// sha256-<hex>.sig tag, merged with the signatures already there.
package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/ctrpush/ctrpush/sign"
)

// Cosign's signature format (the "tag" form cosign verify reads by
// default): the subject's signatures are the layers of one image under
// the tag sha256-<hex>.sig in the subject's repository, each layer a
// simple-signing payload with its signature in an annotation.
const (
	// PayloadMediaType is the media type of a signature layer.
	PayloadMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds the base64 signature of the layer's
	// payload.
	SignatureAnnotation   = "dev.cosignproject.cosign/signature"
	cosignConfigMediaType = "application/vnd.oci.image.config.v1+json"
)

// The PEM block types of cosign's encrypted private keys: cosign v2
// writes the first, v1 wrote the second.
const (
	pemSigstoreKey = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemCosignKey   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// SignatureTag is the tag cosign keeps subject's signatures under.
func SignatureTag(subject digest.Digest) string {
	return fmt.Sprintf("%s-%s.sig", subject.Algorithm(), subject.Encoded())
}

// ErrWrongPassword is a cosign key that does not decrypt with the password
// given.
var ErrWrongPassword = errors.New("the password does not decrypt it (COSIGN_PASSWORD, or the one typed)")

// OpenKey reads cosign's encrypted private key file (as written by
// `cosign generate-key-pair`) and decrypts it with the password password
// returns (called only when the file is a cosign key). Errors are
// *sign.KeyError.
func OpenKey(path string, password func() ([]byte, error)) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &sign.KeyError{Key: path, Err: err}
	}
	sv, err := LoadKey(b, password)
	if err != nil {
		return nil, &sign.KeyError{Key: path, Err: err}
	}
	return New(sv, path), nil
}

// LoadKey decrypts a cosign private key (PEM) with the password
// password returns.
func LoadKey(pemBytes []byte, password func() ([]byte, error)) (signature.SignerVerifier, error) {
	p, _ := pem.Decode(pemBytes)
	if p == nil {
		return nil, fmt.Errorf("not a PEM file (cosign generate-key-pair writes cosign.key): %w", errdefs.ErrInvalidArgument)
	}
	if p.Type != pemSigstoreKey && p.Type != pemCosignKey {
		return nil, fmt.Errorf("a PEM %q block, not cosign's encrypted private key (%q): %w", p.Type, pemSigstoreKey, errdefs.ErrInvalidArgument)
	}
	pass, err := password()
	if err != nil {
		return nil, err
	}
	der, err := encrypted.Decrypt(p.Bytes, pass)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWrongPassword, errdefs.ErrInvalidArgument)
	}
	pk, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("decrypted, but not a PKCS #8 private key: %w", err)
	}
	switch k := pk.(type) {
	case *ecdsa.PrivateKey:
		return signature.LoadECDSASignerVerifier(k, crypto.SHA256)
	case *rsa.PrivateKey:
		return signature.LoadRSAPKCS1v15SignerVerifier(k, crypto.SHA256)
	case ed25519.PrivateKey:
		return signature.LoadED25519SignerVerifier(k)
	default:
		return nil, fmt.Errorf("a %T key, which cosign does not sign with: %w", pk, errdefs.ErrInvalidArgument)
	}
}

// Signer makes cosign signatures with one key.
type Signer struct {
	s    signature.Signer
	name string
}

// New signs with s (a key, or a KMS through sigstore's kms packages),
// named name in messages. When s is also a signature.Verifier, a
// destination that holds a signature of the same payload it verifies gets
// no second one; otherwise only an identical signature counts as there.
func New(s signature.Signer, name string) *Signer {
	return &Signer{s: s, name: name}
}

func (c *Signer) Format() string { return "cosign" }
func (c *Signer) String() string { return "cosign key " + c.name }
func (c *Signer) Where(subject digest.Digest) string {
	return "tag " + SignatureTag(subject)
}

// Sign signs subject's simple-signing payload, whose identity is the
// subject's repository (as `cosign sign` writes it).
func (c *Signer) Sign(ctx context.Context, subject sign.Subject) (sign.Signature, error) {
	ref, err := name.NewDigest(subject.Repository + "@" + subject.Descriptor.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("cosign payload for %s@%s: %w", subject.Repository, subject.Descriptor.Digest, err)
	}
	pl, err := json.Marshal(payload.Cosign{Image: ref})
	if err != nil {
		return nil, err
	}
	sig, err := c.s.SignMessage(bytes.NewReader(pl))
	if err != nil {
		return nil, fmt.Errorf("sign %s with %s: %w", subject.Descriptor.Digest, c, err)
	}
	layer := ocispec.Descriptor{
		MediaType:   PayloadMediaType,
		Digest:      digest.FromBytes(pl),
		Size:        int64(len(pl)),
		Annotations: map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	}
	v, _ := c.s.(signature.Verifier)
	return &cosignSignature{subject: subject.Descriptor.Digest, payload: pl, layer: layer, verifier: v}, nil
}

type cosignSignature struct {
	subject  digest.Digest
	payload  []byte
	layer    ocispec.Descriptor
	verifier signature.Verifier
}

// Place merges the signature into the image under the subject's .sig tag:
// the layers there stay, in their order, and this one is appended unless
// one of them signs the same payload with the same key.
func (s *cosignSignature) Place(ctx context.Context, r sign.Registry) (*sign.Placement, error) {
	tag := SignatureTag(s.subject)
	old, _, err := r.Manifest(ctx, tag)
	if err != nil {
		return nil, fmt.Errorf("read the signatures under %s: %w", tag, err)
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	if old != nil {
		if err := json.Unmarshal(old, &m); err != nil {
			return nil, fmt.Errorf("the manifest under %s is not an image manifest: %w", tag, err)
		}
		if slices.ContainsFunc(m.Layers, s.same) {
			return nil, nil
		}
	}
	m.Layers = append(m.Layers, s.layer)
	cfg, err := cosignConfig(m.Layers)
	if err != nil {
		return nil, err
	}
	m.Config = ocispec.Descriptor{MediaType: cosignConfigMediaType, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	if m.MediaType == "" {
		m.MediaType = ocispec.MediaTypeImageManifest
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &sign.Placement{
		Blobs:    []sign.Blob{{Descriptor: m.Config, Data: cfg}, {Descriptor: ocispec.Descriptor{MediaType: s.layer.MediaType, Digest: s.layer.Digest, Size: s.layer.Size}, Data: s.payload}},
		Manifest: sign.Blob{Descriptor: ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(mb), Size: int64(len(mb))}, Data: mb},
		Tag:      tag,
	}, nil
}

// same reports whether layer l of the .sig image is this signature: the
// same payload, signed by the same key.
func (s *cosignSignature) same(l ocispec.Descriptor) bool {
	if l.Digest != s.layer.Digest {
		return false
	}
	got := l.Annotations[SignatureAnnotation]
	if got == s.layer.Annotations[SignatureAnnotation] {
		return true
	}
	if s.verifier == nil {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(got))
	if err != nil {
		return false
	}
	return s.verifier.VerifySignature(bytes.NewReader(raw), bytes.NewReader(s.payload)) == nil
}

// cosignConfig is the config of a .sig image with layers: its diff_ids
// are the layers' digests (the payloads are not compressed), with one
// history entry each, as cosign writes it.
func cosignConfig(layers []ocispec.Descriptor) ([]byte, error) {
	type history struct {
		Created string `json:"created"`
	}
	type rootfs struct {
		Type    string          `json:"type"`
		DiffIDs []digest.Digest `json:"diff_ids"`
	}
	cfg := struct {
		Architecture string         `json:"architecture"`
		Created      string         `json:"created"`
		History      []history      `json:"history"`
		OS           string         `json:"os"`
		RootFS       rootfs         `json:"rootfs"`
		Config       map[string]any `json:"config"`
	}{Created: "0001-01-01T00:00:00Z", RootFS: rootfs{Type: "layers"}, Config: map[string]any{}}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
		cfg.History = append(cfg.History, history{Created: "0001-01-01T00:00:00Z"})
	}
	return json.Marshal(cfg)
}
