// Package sign is what a push needs of a signer: the Signer and
// Signature interfaces, and what a signature sends. Its subpackages make
// signatures in the forms the real verifiers read: sign/cosign (a
// simple-signing payload under the subject's sha256-<hex>.sig tag) and
// sign/notation (a JWS or COSE envelope pushed as an OCI 1.1 referrer of
// the subject). This package imports neither, so an embedder that does
// not sign compiles none of sigstore or notation-go.
//
// A Signer is opened before a push sends anything (a key that cannot be
// read or decrypted fails the push before it starts); the push calls Sign
// once per image the tag names, after it computed that image's digest,
// and places the signature at each destination before the tag moves
// there. An embedder can plug any key (a KMS) through cosign.New, which
// takes a sigstore signature.Signer, through notation.New, which takes a
// notation-go notation.Signer, or with a Signer of its own.
package sign

import (
	"context"
	"errors"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Subject is what is signed: the manifest or index a destination's tag
// names.
type Subject struct {
	Descriptor ocispec.Descriptor
	// Repository is the destination repository ("host/path"): the
	// identity a cosign payload claims.
	Repository string
}

// Signer signs images for a push.
type Signer interface {
	// Format is "cosign" or "notation" (messages, --dry-run, results).
	Format() string
	// String names the signer and its key for messages.
	String() string
	// Where says where the signature of subject goes (--dry-run).
	Where(subject digest.Digest) string
	// Sign signs subject. The push calls it once per image, whatever the
	// number of destinations, before any tag moves.
	Sign(ctx context.Context, subject Subject) (Signature, error)
}

// Signature is one signature, ready to be placed at a destination.
type Signature interface {
	// Place says what to send to a destination, given what it holds
	// (read through r): nil when the destination has this signature
	// already (a re-push adds none).
	Place(ctx context.Context, r Registry) (*Placement, error)
}

// Registry is what a Signature may read of a destination repository.
type Registry interface {
	// Manifest returns the manifest under ref (a tag or a digest) and
	// its descriptor; nil bytes and no error when there is none.
	Manifest(ctx context.Context, ref string) ([]byte, ocispec.Descriptor, error)
	// Referrers lists the referrers of subject (the referrers API, else
	// the tag schema's index).
	Referrers(ctx context.Context, subject digest.Digest) ([]ocispec.Descriptor, error)
}

// Blob is content a Placement sends.
type Blob struct {
	Descriptor ocispec.Descriptor
	Data       []byte
}

// Placement is what the push sends to place a signature at one
// destination: Blobs (each skipped where the registry has it), then
// Manifest, under Tag when set (cosign), else by digest as a referrer of
// Subject (notation; on a registry without the referrers API the push
// lists it in the subject's tag-schema index).
type Placement struct {
	Blobs    []Blob
	Manifest Blob
	Tag      string
	Subject  *ocispec.Descriptor
}

// KeyError is a key that could not be opened: unreadable, not a key of
// the expected kind, or a wrong password. Nothing was pushed.
type KeyError struct {
	// Key names the key (its file, or its name).
	Key string
	Err error
}

func (e *KeyError) Error() string { return fmt.Sprintf("signing key %s: %v", e.Key, e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }

// IsKeyError reports whether err is a key that could not be opened.
func IsKeyError(err error) bool {
	var k *KeyError
	return errors.As(err, &k)
}
