// Package verify checks blob bytes against their digest and size as they
// stream: the one check every reader of blob bytes uses (uploads, fetches,
// direct reads of a daemon's content directory, the push's cache of small
// blobs), so a corrupt copy is never committed or stored.
package verify

import (
	"fmt"
	"hash"
	"io"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// CorruptError says bytes did not match the digest (or size) they were
// stored under. It wraps errdefs.ErrDataLoss.
type CorruptError struct {
	Digest digest.Digest
	Got    digest.Digest // what the bytes read hash to
	Read   int64         // bytes read
	Size   int64         // bytes expected
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("blob %s is corrupt: read %d of %d bytes, hashing to %s", e.Digest, e.Read, e.Size, e.Got)
}

// Unwrap lets errdefs.IsDataLoss hold.
func (e *CorruptError) Unwrap() error { return errdefs.ErrDataLoss }

// Verifier hashes a blob's bytes, written to it in order, and checks them
// against the digest and size once the last byte is in. It is the one check
// every reader of blob bytes uses: uploads, direct reads of a daemon's
// content directory, and the push's cache of small blobs.
type Verifier struct {
	want digest.Digest
	size int64
	h    hash.Hash
	n    int64
}

// New checks size bytes against d. A digest whose algorithm is not
// available cannot be checked: Write then only counts.
func New(d digest.Digest, size int64) *Verifier {
	v := &Verifier{want: d, size: size}
	if d.Algorithm().Available() {
		v.h = d.Algorithm().Hash()
	}
	return v
}

// Write hashes p. The write that reaches the size, or goes past it, returns
// a *CorruptError when the bytes are not the blob's.
func (v *Verifier) Write(p []byte) (int, error) {
	if v.h != nil {
		v.h.Write(p)
	}
	v.n += int64(len(p))
	if v.n >= v.size {
		if err := v.Verify(); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Written is the count of bytes hashed so far.
func (v *Verifier) Written() int64 { return v.n }

// Verify checks what was written: every byte, and exactly the blob's.
func (v *Verifier) Verify() error {
	var got digest.Digest
	if v.h != nil {
		got = digest.NewDigest(v.want.Algorithm(), v.h)
	}
	if v.n != v.size || v.h != nil && got != v.want {
		return &CorruptError{Digest: v.want, Got: got, Read: v.n, Size: v.size}
	}
	return nil
}

// Reader reads a blob of size bytes from r and fails the read that
// reaches its end (or an early EOF) with a *CorruptError when the bytes do
// not match d. That read returns none of its bytes, so a consumer never
// gets a whole blob that is not the one asked for: a registry receiving
// it as a request body sees a short body and commits nothing.
func Reader(r io.Reader, d digest.Digest, size int64) io.Reader {
	return &reader{r: r, v: New(d, size)}
}

type reader struct {
	r io.Reader
	v *Verifier
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if _, verr := r.v.Write(p[:n]); verr != nil {
		return 0, verr
	}
	if err == io.EOF && r.v.Written() < r.v.size {
		return n, r.v.Verify()
	}
	return n, err
}

// Bytes checks a whole blob held in memory.
func Bytes(b []byte, d digest.Digest, size int64) error {
	v := New(d, size)
	_, err := v.Write(b)
	if err == nil && int64(len(b)) < size {
		err = v.Verify()
	}
	return err
}
