// Package notation makes notation signatures of the images a push
// publishes: an envelope of the subject's descriptor made by notation-go's
// signer (a local key, or any notationgo.Signer), pushed as a referrer of
// the subject, as `notation sign` pushes it.
package notation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/notaryproject/notation-core-go/signature/cose"
	"github.com/notaryproject/notation-core-go/signature/jws"
	notationgo "github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/config"
	"github.com/notaryproject/notation-go/signer"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/sign"
)

// Notation's signature format: an envelope (JWS by default, or COSE) of
// the subject's descriptor, the one layer of an OCI manifest whose subject
// is the signed image and whose config has the notary signature media
// type (as notation sign pushes it).
const (
	// ArtifactType is the config media type (the artifact type
	// a referrers list shows) of a notation signature.
	ArtifactType = "application/vnd.cncf.notary.signature"
	// ThumbprintAnnotation lists the SHA-256 of each certificate
	// of the signing chain.
	ThumbprintAnnotation = "io.cncf.notary.x509chain.thumbprint#S256"
	// The envelope media types.
	JWS  = jws.MediaTypeEnvelope
	COSE = cose.MediaTypeEnvelope
)

// notationConfig is the notation signature manifest's config: the empty
// JSON object under the notary media type.
var notationConfig = sign.Blob{
	Descriptor: ocispec.Descriptor{MediaType: ArtifactType, Digest: ocispec.DescriptorEmptyJSON.Digest, Size: ocispec.DescriptorEmptyJSON.Size},
	Data:       ocispec.DescriptorEmptyJSON.Data,
}

// OpenKey opens notation's signing key key, either a PEM private
// key file with its certificate chain certFile (PEM, the signing
// certificate first), or, when key is no file, the name of a key in
// notation's signingkeys.json (`notation key add`/`notation cert
// generate-test`; certFile then may be empty). The key and certificate
// are checked to belong together. Errors are *KeyError.
func OpenKey(key, certFile string) (*Signer, error) {
	keyFile, name := key, key
	if _, err := os.Stat(key); err != nil {
		keys, lerr := config.LoadSigningKeys()
		if lerr != nil {
			return nil, &sign.KeyError{Key: key, Err: fmt.Errorf("neither a key file (%v) nor a name in notation's signingkeys.json (%v): %w", err, lerr, errdefs.ErrNotFound)}
		}
		ks, gerr := keys.Get(key)
		if gerr != nil {
			return nil, &sign.KeyError{Key: key, Err: fmt.Errorf("neither a key file (%v) nor a key notation knows (%v): %w", err, gerr, errdefs.ErrNotFound)}
		}
		if ks.X509KeyPair == nil {
			return nil, &sign.KeyError{Key: key, Err: fmt.Errorf("a notation plugin key: ctrpush signs with local keys (the library takes any notationgo.Signer): %w", errdefs.ErrNotImplemented)}
		}
		keyFile = ks.KeyPath
		if certFile == "" {
			certFile = ks.CertificatePath
		}
	}
	if certFile == "" {
		return nil, &sign.KeyError{Key: key, Err: fmt.Errorf("no certificate chain: name the PEM file with --cert: %w", errdefs.ErrInvalidArgument)}
	}
	s, err := signer.NewGenericSignerFromFiles(keyFile, certFile)
	if err != nil {
		return nil, &sign.KeyError{Key: key, Err: fmt.Errorf("with certificate %s: %w: %w", certFile, err, errdefs.ErrInvalidArgument)}
	}
	return New(s, name, JWS), nil
}

// Signer makes notation signatures with one notationgo.Signer.
type Signer struct {
	s         notationgo.Signer
	name      string
	mediaType string
}

// New signs with s (a local key from notation-go's signer package,
// or a plugin: a KMS), named name in messages, in envelope mediaType
// (JWS or COSE).
func New(s notationgo.Signer, name, mediaType string) *Signer {
	return &Signer{s: s, name: name, mediaType: mediaType}
}

func (n *Signer) Format() string { return "notation" }
func (n *Signer) String() string { return "notation key " + n.name }
func (n *Signer) Where(subject digest.Digest) string {
	return "referrer of " + subject.String()
}

// SigningAgent names ctrpush in the envelopes it signs.
var SigningAgent = "ctrpush"

// Sign makes the envelope of subject's descriptor and its manifest.
func (n *Signer) Sign(ctx context.Context, subject sign.Subject) (sign.Signature, error) {
	desc := ocispec.Descriptor{MediaType: subject.Descriptor.MediaType, Digest: subject.Descriptor.Digest, Size: subject.Descriptor.Size}
	env, info, err := n.s.Sign(ctx, desc, notationgo.SignerSignOptions{SignatureMediaType: n.mediaType, SigningAgent: SigningAgent})
	if err != nil {
		return nil, fmt.Errorf("sign %s with %s: %w", subject.Descriptor.Digest, n, err)
	}
	if info == nil || len(info.CertificateChain) == 0 {
		return nil, fmt.Errorf("sign %s with %s: the signer returned no certificate chain", subject.Descriptor.Digest, n)
	}
	var prints []string
	for _, c := range info.CertificateChain {
		sum := sha256.Sum256(c.Raw)
		prints = append(prints, hex.EncodeToString(sum[:]))
	}
	pj, err := json.Marshal(prints)
	if err != nil {
		return nil, err
	}
	signed := info.SignedAttributes.SigningTime
	if signed.IsZero() {
		signed = time.Now()
	}
	envelope := sign.Blob{Descriptor: ocispec.Descriptor{MediaType: n.mediaType, Digest: digest.FromBytes(env), Size: int64(len(env))}, Data: env}
	sub := desc
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    notationConfig.Descriptor,
		Layers:    []ocispec.Descriptor{envelope.Descriptor},
		Subject:   &sub,
		Annotations: map[string]string{
			ThumbprintAnnotation:      string(pj),
			ocispec.AnnotationCreated: signed.UTC().Format(time.RFC3339),
		},
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &notationSignature{
		subject:    sub,
		thumbprint: string(pj),
		placement: sign.Placement{
			Blobs:    []sign.Blob{notationConfig, envelope},
			Manifest: sign.Blob{Descriptor: ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(mb), Size: int64(len(mb))}, Data: mb},
			Subject:  &sub,
		},
	}, nil
}

type notationSignature struct {
	subject    ocispec.Descriptor
	thumbprint string
	placement  sign.Placement
}

// Place sends the signature as a referrer of its subject, unless the
// subject has a notation signature by the same certificate chain already
// (a re-push adds none).
func (s *notationSignature) Place(ctx context.Context, r sign.Registry) (*sign.Placement, error) {
	refs, err := r.Referrers(ctx, s.subject.Digest)
	if err != nil {
		return nil, fmt.Errorf("list the signatures of %s: %w", s.subject.Digest, err)
	}
	for _, d := range refs {
		if d.ArtifactType != ArtifactType {
			continue
		}
		prints, ok := d.Annotations[ThumbprintAnnotation]
		if !ok {
			// Not every referrers list carries the annotations
			// (go-containerregistry's does not): ask the manifest.
			if prints, err = thumbprintOf(ctx, r, d.Digest); err != nil {
				return nil, err
			}
		}
		if sameChain(prints, s.thumbprint) {
			return nil, nil
		}
	}
	p := s.placement
	return &p, nil
}

// thumbprintOf reads the certificate thumbprints annotation of signature
// manifest d.
func thumbprintOf(ctx context.Context, r sign.Registry, d digest.Digest) (string, error) {
	b, _, err := r.Manifest(ctx, d.String())
	if err != nil || b == nil {
		return "", err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("signature manifest %s: %w", d, err)
	}
	return m.Annotations[ThumbprintAnnotation], nil
}

// sameChain compares two thumbprint annotations as lists.
func sameChain(a, b string) bool {
	var x, y []string
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return slices.Equal(x, y)
}
