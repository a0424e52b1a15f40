package imageservice

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/internal/verify"
)

// maxCachedBlob bounds the manifests, indexes and configs a push keeps in
// memory once read.
const maxCachedBlob = 4 << 20

// pushStore is the content store as one push sees it: each blob's Info
// and each small manifest, index and config are read from the store
// once. On a containerd daemon every Info is a gRPC call, and a push reads
// them in several passes (lease, mount candidates, platform choice,
// labels); for 200 small layers that was most of the push.
type pushStore struct {
	content.Store
	direct content.Provider // the blob files themselves; nil: none
	mu     sync.Mutex
	infos  map[digest.Digest]infoAnswer
	blobs  map[digest.Digest][]byte
}

type infoAnswer struct {
	info content.Info
	err  error
}

func newPushStore(cs content.Store, blobs content.Provider) *pushStore {
	return &pushStore{Store: cs, direct: blobs, infos: map[digest.Digest]infoAnswer{}, blobs: map[digest.Digest][]byte{}}
}

// Info answers from the cache; an absent blob stays absent for the push
// (what it writes itself goes through Update or is looked up afresh).
func (p *pushStore) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	p.mu.Lock()
	a, ok := p.infos[d]
	p.mu.Unlock()
	if ok {
		return a.info, a.err
	}
	info, err := p.Store.Info(ctx, d)
	if err == nil || errdefs.IsNotFound(err) {
		p.mu.Lock()
		p.infos[d] = infoAnswer{info, err}
		p.mu.Unlock()
	}
	return info, err
}

// Update writes through and keeps the answer.
func (p *pushStore) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	out, err := p.Store.Update(ctx, info, fieldpaths...)
	p.mu.Lock()
	if err == nil {
		p.infos[info.Digest] = infoAnswer{info: out}
	} else {
		delete(p.infos, info.Digest)
	}
	p.mu.Unlock()
	return out, err
}

// Delete writes through and forgets.
func (p *pushStore) Delete(ctx context.Context, d digest.Digest) error {
	p.mu.Lock()
	delete(p.infos, d)
	delete(p.blobs, d)
	p.mu.Unlock()
	return p.Store.Delete(ctx, d)
}

// ReaderAt serves small manifests, indexes and configs from memory after
// their first read; layers stream from the store.
func (p *pushStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if desc.Size > maxCachedBlob || !isMetadata(desc.MediaType) {
		return p.layerReader(ctx, desc)
	}
	p.mu.Lock()
	b, ok := p.blobs[desc.Digest]
	p.mu.Unlock()
	if !ok {
		var err error
		if b, err = content.ReadBlob(ctx, p.Store, desc); err != nil {
			return nil, err
		}
		if err := verify.Bytes(b, desc.Digest, int64(len(b))); err != nil {
			return nil, fmt.Errorf("the local copy of %s: %w", desc.Digest, err)
		}
		p.mu.Lock()
		p.blobs[desc.Digest] = b
		p.mu.Unlock()
	}
	return bytesReaderAt{bytes.NewReader(b)}, nil
}

// layerReader opens a blob's bytes: straight from the blob files when the
// service has them (WithBlobProvider) and the push has already seen the
// blob in its namespace — the push's lease keeps it there — so no metadata
// transaction runs per blob while the push uploads; from the store
// otherwise.
func (p *pushStore) layerReader(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if p.direct != nil {
		p.mu.Lock()
		a, ok := p.infos[desc.Digest]
		p.mu.Unlock()
		if ok && a.err == nil {
			if ra, err := p.direct.ReaderAt(ctx, desc); err == nil {
				return ra, nil
			}
		}
	}
	return p.Store.ReaderAt(ctx, desc)
}

func isMetadata(mt string) bool {
	return images.IsManifestType(mt) || images.IsIndexType(mt) || images.IsConfigType(mt)
}

// prefetch asks the store for the Info of every descriptor at once (a few
// at a time), so the passes that follow find them cached.
func (p *pushStore) prefetch(ctx context.Context, descs []ocispec.Descriptor) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, d := range descs {
		g.Go(func() error {
			_, err := p.Info(ctx, d.Digest)
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		})
	}
	return g.Wait()
}

type bytesReaderAt struct{ *bytes.Reader }

func (b bytesReaderAt) Close() error { return nil }
