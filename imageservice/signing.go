package imageservice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/internal/registry"
	"github.com/ctrpush/ctrpush/internal/verify"
	"github.com/ctrpush/ctrpush/progress"
	"github.com/ctrpush/ctrpush/sign"
)

// WithSigner signs what each destination's tag names with s (repeat it
// for several signatures: cosign and notation, say). The image is signed
// once, after the push computed its digest (the index, the manifest, or
// the new index the tag will name) and before any tag moves; the
// signature is placed at every destination before its tag moves there,
// so a tag never names an unsigned image, and a destination that has the
// same signature already gets none twice. The signer's key is the
// caller's to open before the push (so a bad key sends nothing). Push and
// PlanPush only (PlanPush says what would be signed and where).
func WithSigner(s sign.Signer) TransferOption {
	return func(o *transferOptions) error {
		if s == nil {
			return &OptionError{Option: "WithSigner", Err: errors.New("nil signer")}
		}
		o.signers = append(o.signers, s)
		return nil
	}
}

// SignatureResult is a signature a push placed at one destination (or
// found there already).
type SignatureResult struct {
	// Format is "cosign" or "notation"; Signer names the key.
	Format, Signer string
	// Subject is the signed digest, Where where the signature is ("tag
	// sha256-….sig", "referrer of sha256:…").
	Subject digest.Digest
	Where   string
	// Manifest is the signature manifest PUT, zero when the destination
	// had this signature already (Existing).
	Manifest digest.Digest
	Existing bool
}

// signing signs the root of one tag group once and places the signatures
// at each leg.
type signing struct {
	signers []sign.Signer
	// repository is the identity a cosign payload claims: the first
	// destination's (as a signature copied with cosign copy keeps its
	// first repository).
	repository string
	o          *transferOptions

	mu     sync.Mutex
	sigs   map[digest.Digest][]sign.Signature
	placed map[*leg][]SignatureResult
}

func newSigning(o *transferOptions, legs []*leg) *signing {
	if len(o.signers) == 0 {
		return nil
	}
	return &signing{signers: o.signers, repository: legs[0].dest.repo.Name(), o: o,
		sigs: map[digest.Digest][]sign.Signature{}, placed: map[*leg][]SignatureResult{}}
}

// of signs root with every signer, once per root.
func (sg *signing) of(ctx context.Context, root ocispec.Descriptor) ([]sign.Signature, error) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sigs, ok := sg.sigs[root.Digest]; ok {
		return sigs, nil
	}
	var sigs []sign.Signature
	for _, s := range sg.signers {
		sig, err := s.Sign(ctx, sign.Subject{Descriptor: root, Repository: sg.repository})
		if err != nil {
			return nil, &SignError{Signer: s.String(), Subject: root.Digest, Err: err}
		}
		sigs = append(sigs, sig)
		sg.o.sink.Emit(progress.Event{Message: fmt.Sprintf("Signed %s with %s", root.Digest, s)})
	}
	sg.sigs[root.Digest] = sigs
	return sigs, nil
}

// SignError is a signer that could not sign (a KMS that refused, say).
type SignError struct {
	Signer  string
	Subject digest.Digest
	Err     error
}

func (e *SignError) Error() string {
	return fmt.Sprintf("sign %s with %s: %v", e.Subject, e.Signer, e.Err)
}
func (e *SignError) Unwrap() error { return e.Err }

// placeAll signs root and places its signatures at each of runs, side by
// side; a leg where that fails fails (and, tags moving together, no tag
// moves).
func (sg *signing) placeAll(ctx context.Context, runs []*legRun, root ocispec.Descriptor) {
	if sg == nil || len(runs) == 0 {
		return
	}
	sigs, err := sg.of(ctx, root)
	if err != nil {
		for _, r := range runs {
			r.fail(err)
		}
		return
	}
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(func() {
			if err := sg.place(r.ctx, r.leg, root, sigs); err != nil {
				r.fail(err)
			}
		})
	}
	wg.Wait()
}

// placeAt signs root (once) and places its signatures at l.
func (sg *signing) placeAt(ctx context.Context, l *leg, root ocispec.Descriptor) error {
	if sg == nil {
		return nil
	}
	sigs, err := sg.of(ctx, root)
	if err != nil {
		return err
	}
	return sg.place(ctx, l, root, sigs)
}

// place puts root's signatures at l's destination.
func (sg *signing) place(ctx context.Context, l *leg, root ocispec.Descriptor, sigs []sign.Signature) error {
	repo := l.dest.repo
	var results []SignatureResult
	for i, sig := range sigs {
		s := sg.signers[i]
		res := SignatureResult{Format: s.Format(), Signer: s.String(), Subject: root.Digest, Where: s.Where(root.Digest)}
		p, err := sig.Place(ctx, signedRegistry{repo})
		if err != nil {
			return fmt.Errorf("place the %s signature of %s in %s: %w", s.Format(), root.Digest, repo.Name(), err)
		}
		if p == nil {
			res.Existing = true
			sg.o.sink.Emit(progress.Event{Message: fmt.Sprintf("Signature (%s) of %s: already there (%s)", s.Format(), root.Digest, res.Where), Destination: l.label})
		} else {
			if err := sg.send(ctx, l, p); err != nil {
				return fmt.Errorf("push the %s signature of %s to %s: %w", s.Format(), root.Digest, repo.Name(), err)
			}
			res.Manifest = p.Manifest.Descriptor.Digest
			sg.o.sink.Emit(progress.Event{Message: fmt.Sprintf("Signature (%s) of %s: pushed %s (%s)", s.Format(), root.Digest, res.Manifest, res.Where), Destination: l.label})
		}
		results = append(results, res)
	}
	sg.mu.Lock()
	sg.placed[l] = append(sg.placed[l], results...)
	sg.mu.Unlock()
	return nil
}

// send uploads p's blobs the registry lacks, PUTs its manifest, and lists
// a referrer in its subject's tag-schema index when the registry has no
// referrers API.
func (sg *signing) send(ctx context.Context, l *leg, p *sign.Placement) error {
	repo := l.dest.repo
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range p.Blobs {
		g.Go(func() error {
			if err := verify.Bytes(b.Data, b.Descriptor.Digest, b.Descriptor.Size); err != nil {
				return err
			}
			if ok, err := repo.BlobExists(gctx, b.Descriptor.Digest); err != nil || ok {
				return err
			}
			return repo.UploadBlob(gctx, b.Descriptor, bytes.NewReader(b.Data), registry.UploadOptions{})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	m := p.Manifest
	ref := p.Tag
	if ref == "" {
		ref = m.Descriptor.Digest.String()
	}
	if err := repo.PutManifest(ctx, m.Descriptor, m.Data, ref, nil); err != nil {
		return err
	}
	if p.Subject == nil {
		return nil
	}
	desc, _, err := referrerDescriptor(m.Descriptor.Digest, m.Data)
	if err != nil {
		return err
	}
	desc.MediaType = m.Descriptor.MediaType
	return updateReferrersIndex(ctx, repo, referrerGroup{subject: p.Subject.Digest, refs: []ocispec.Descriptor{desc}}, sg.o.sink, l.label)
}

// results are the signatures placed at l.
func (sg *signing) results(l *leg) []SignatureResult {
	if sg == nil {
		return nil
	}
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return sg.placed[l]
}

// signedRegistry is what a signature reads of a destination.
type signedRegistry struct{ repo *registry.Repository }

func (r signedRegistry) Manifest(ctx context.Context, tag string) ([]byte, ocispec.Descriptor, error) {
	desc, err := r.repo.Resolve(ctx, tag)
	if errdefs.IsNotFound(err) {
		return nil, ocispec.Descriptor{}, nil
	}
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	rc, err := r.repo.Fetch(ctx, desc)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(verify.Reader(io.LimitReader(rc, desc.Size+1), desc.Digest, desc.Size))
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	return b, desc, nil
}

func (r signedRegistry) Referrers(ctx context.Context, subject digest.Digest) ([]ocispec.Descriptor, error) {
	return r.repo.Referrers(ctx, subject)
}
