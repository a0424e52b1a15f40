package imageservice

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"sync"
	"testing"

	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/sign"
	"github.com/ctrpush/ctrpush/sign/cosign"
)

// recordingSigner is an embedder's Signer (a KMS, say): it signs with a
// cosign key made in the test, records each subject it was asked to sign,
// and refuses when refuse is set.
type recordingSigner struct {
	*cosign.Signer
	refuse   error
	mu       sync.Mutex
	subjects []digest.Digest
}

func newRecordingSigner(t *testing.T) *recordingSigner {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &recordingSigner{Signer: cosign.New(sv, "test-kms")}
}

func (r *recordingSigner) Sign(ctx context.Context, s sign.Subject) (sign.Signature, error) {
	r.mu.Lock()
	r.subjects = append(r.subjects, s.Descriptor.Digest)
	r.mu.Unlock()
	if r.refuse != nil {
		return nil, r.refuse
	}
	return r.Signer.Sign(ctx, s)
}

// A signer that refuses (a KMS that is down) leaves every destination
// untagged: the signature goes before the tag, and tags move together.
func TestSignerRefusalTagsNothing(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}}, "team/app:1")
	other := registrytest.StartGGCR(t)
	kms := newRecordingSigner(t)
	kms.refuse = errors.New("KMS unavailable")
	res, err := f.svc.Push(f.ctx, f.name, WithDestination(f.name), WithDestination(other.Host+"/team/app:1"), WithSigner(kms))
	var de *DestinationsError
	if !errors.As(err, &de) || !errors.Is(err, kms.refuse) {
		t.Fatalf("push with a refusing signer: %v, want a DestinationsError carrying the refusal", err)
	}
	var se *SignError
	if !errors.As(err, &se) || se.Subject != f.img.Target.Digest {
		t.Fatalf("%v: want a SignError naming %s", err, f.img.Target.Digest)
	}
	for _, r := range res {
		if r.Tagged {
			t.Fatalf("%s tagged although its signature could not be made", r.Reference)
		}
	}
	if len(kms.subjects) != 1 {
		t.Fatalf("asked to sign %d times, want once for both destinations", len(kms.subjects))
	}
	for _, reg := range []*registrytest.Registry{f.reg, other} {
		if d, _, _, ok := reg.Manifest(t, "team/app", "1"); ok {
			t.Fatalf("%s tagged %s", reg.Host, d)
		}
	}

	// With one destination: the push fails with the refusal, untagged.
	if _, err := f.svc.Push(f.ctx, f.name, WithSigner(kms)); !errors.As(err, &se) {
		t.Fatalf("one destination: %v, want a SignError", err)
	}
	if d, _, _, ok := f.reg.Manifest(t, "team/app", "1"); ok {
		t.Fatalf("tagged %s", d)
	}
}

// What is signed is what the tag names: a new index of some platforms,
// the host's manifest when the index's content is missing.
func TestSignerSignsWhatTheTagNames(t *testing.T) {
	t.Parallel()
	f := newPushFixture(t, testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64", "linux/s390x"}}, "team/app:1")
	kms := newRecordingSigner(t)
	res, err := f.svc.Push(f.ctx, f.name, WithPlatforms("linux/amd64", "linux/arm64"), WithSigner(kms))
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].NewIndex || len(kms.subjects) != 1 || kms.subjects[0] != res[0].Descriptor.Digest || kms.subjects[0] == f.img.Target.Digest {
		t.Fatalf("signed %v, want the new index %s (not the image's %s)", kms.subjects, res[0].Descriptor.Digest, f.img.Target.Digest)
	}
	if len(res[0].Signatures) != 1 || res[0].Signatures[0].Subject != res[0].Descriptor.Digest || res[0].Signatures[0].Manifest == "" {
		t.Fatalf("result signatures %+v", res[0].Signatures)
	}
	if _, _, _, ok := f.reg.Manifest(t, "team/app", cosign.SignatureTag(res[0].Descriptor.Digest)); !ok {
		t.Fatal("no signature under the new index's .sig tag")
	}

	// The index's arm64 layer is missing (and, at another registry, not
	// mountable): the host's manifest goes, and it is what is signed.
	fresh := registrytest.Start(t)
	hs := hidingStore{Store: f.store.ContentStore(), hide: map[digest.Digest]bool{f.img.Platform("linux/arm64").Layers[0].Digest: true}}
	svc, err := New(hs, f.store.ImageStore(), f.store.LeaseManager(), WithNamespace("test"), WithHostPlatform(platforms.MustParse("linux/amd64")))
	if err != nil {
		t.Fatal(err)
	}
	kms = newRecordingSigner(t)
	res, err = svc.Push(f.ctx, f.name, WithDestination(fresh.Host+"/team/host:1"), WithSigner(kms))
	if err != nil {
		t.Fatal(err)
	}
	amd := f.img.Platform("linux/amd64").Descriptor.Digest
	if !res[0].ManifestInsteadOfIndex || kms.subjects[len(kms.subjects)-1] != amd {
		t.Fatalf("signed %v, want the amd64 manifest %s last; result %+v", kms.subjects, amd, res[0])
	}
	if _, _, _, ok := fresh.Manifest(t, "team/host", cosign.SignatureTag(amd)); !ok {
		t.Fatal("no signature of the host's manifest")
	}
}
