package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/verify"
)

// DirectReads wraps a containerd daemon's content store (read over gRPC)
// so that blobs are read straight from the content plugin's directory
// (root, as the daemon's introspection service reports it) when this
// process can open the files: same host, same user. The store still
// decides what exists in the namespace (Info first); the file is only
// where the bytes come from, and a read that goes through the whole blob
// in order is checked against its digest. Anything else falls back to
// gRPC. A push of 256 MiB from a daemon took 1.29 s over gRPC and 0.80 s
// read from the files on the benchmark machine (docs/BENCHMARKS.md).
func DirectReads(cs content.Store, root string) content.Store {
	return &directStore{Store: cs, root: root}
}

type directStore struct {
	content.Store
	root string
}

func (s *directStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := desc.Digest.Validate(); err == nil {
		// The namespace must have the blob: ask the daemon first.
		if info, err := s.Store.Info(ctx, desc.Digest); err == nil {
			path := filepath.Join(s.root, "blobs", desc.Digest.Algorithm().String(), desc.Digest.Encoded())
			if f, err := os.Open(path); err == nil {
				if fi, err := f.Stat(); err == nil && fi.Size() == info.Size {
					return &verifyingReaderAt{f: f, size: info.Size, v: verify.New(desc.Digest, info.Size)}, nil
				}
				_ = f.Close()
			} else {
				log.G(ctx).WithError(err).Debug("direct read unavailable; reading over gRPC")
			}
		} else if errdefs.IsNotFound(err) {
			return nil, err
		}
	}
	return s.Store.ReaderAt(ctx, desc)
}

// verifyingReaderAt checks what is read in order from offset 0 with the
// protocol package's Verifier: the read that reaches the end fails when the
// bytes do not match the digest, so a corrupt file never passes for the
// blob.
type verifyingReaderAt struct {
	f    *os.File
	size int64
	mu   sync.Mutex
	v    *verify.Verifier
	// outOfOrder: some read neither continued where the last one ended
	// nor re-read checked bytes; from then on nothing is checked.
	outOfOrder bool
}

func (r *verifyingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.outOfOrder {
		return n, err
	}
	next := r.v.Written()
	switch {
	case off == next:
		if _, verr := r.v.Write(p[:n]); verr != nil {
			return 0, fmt.Errorf("the content store's file for %w", verr)
		}
	case off < next && off+int64(n) <= next:
		// a re-read of bytes already checked: fine
	default:
		r.outOfOrder = true
	}
	return n, err
}
func (r *verifyingReaderAt) Size() int64  { return r.size }
func (r *verifyingReaderAt) Close() error { return r.f.Close() }
