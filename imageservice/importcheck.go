package imageservice

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BrokenImageError says an archive's image cannot be imported: its index
// or manifest, or a blob a complete platform needs, is missing, does not
// match its digest, or has another size than its descriptor says. Nothing
// of the archive is kept. It wraps errdefs.ErrDataLoss.
type BrokenImageError struct {
	Image string
	// Problems name each broken blob and what is wrong with it.
	Problems []string
}

func (e *BrokenImageError) Error() string {
	shown := e.Problems
	more := ""
	if len(shown) > 5 {
		more = fmt.Sprintf("; and %d more", len(shown)-5)
		shown = shown[:5]
	}
	return fmt.Sprintf("image %s in the archive is broken: %s%s", e.Image, strings.Join(shown, "; "), more)
}

// Unwrap lets errdefs.IsDataLoss hold.
func (e *BrokenImageError) Unwrap() error { return errdefs.ErrDataLoss }

// archiveBlobs records which blobs an OCI layout archive carries (by the
// name of their file, blobs/<algorithm>/<hex>) and their sizes, read from
// the tar stream as the importer reads it. A blob whose file is in the
// archive but whose digest the content store does not have after the
// import had bytes that do not match its name: the store files blobs under
// the digest of their bytes.
type archiveBlobs struct {
	pw   *io.PipeWriter
	done chan struct{}
	mu   sync.Mutex
	size map[digest.Digest]int64
	// files counts the archive's entries, whatever their name.
	files int
}

// watchArchive returns r teed into a tar reader that records the blobs.
// Call finish once the importer is done with the stream.
func watchArchive(r io.Reader) (io.Reader, *archiveBlobs) {
	pr, pw := io.Pipe()
	a := &archiveBlobs{pw: pw, done: make(chan struct{}), size: map[digest.Digest]int64{}}
	go func() {
		defer close(a.done)
		tr := tar.NewReader(pr)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			a.mu.Lock()
			a.files++
			a.mu.Unlock()
			name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
			parts := strings.Split(name, "/")
			if len(parts) != 3 || parts[0] != ocispec.ImageBlobsDir {
				continue
			}
			if d, err := digest.Parse(parts[1] + ":" + parts[2]); err == nil {
				a.mu.Lock()
				a.size[d] = h.Size
				a.mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, pr) // whatever follows: never block the importer
	}()
	return io.TeeReader(r, pw), a
}

// finish waits for the recording to end once the importer is done with
// the stream. After an import that worked, what the archive has after its
// end (padding) is read first, so a writer piping it in is not cut off;
// rest is read until its end or its context's (interruptible).
func (a *archiveBlobs) finish(rest io.Reader, imported bool) {
	if imported {
		_, _ = io.Copy(io.Discard, rest)
	}
	_ = a.pw.Close()
	<-a.done
}

// entries is how many entries of the archive the recording saw.
func (a *archiveBlobs) entries() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.files
}

// carries reports whether the archive had a file named for d.
func (a *archiveBlobs) carries(d digest.Digest) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.size[d]
	return ok
}

// importCheck is what checking one imported image found.
type importCheck struct {
	// missing are the platforms whose content is not all there (a partial
	// index: accepted, and reported).
	missing []ocispec.Platform
	// manifests are the digests of the image's manifests and indexes.
	manifests []digest.Digest
}

// checkImported checks image name, whose target is target, as the import
// left it in cs: every blob present has the size its descriptor says; the
// target is there; a single manifest has all its content; an index has at
// least one platform with all its content (the others are reported).
// Non-distributable layers need not be there.
func checkImported(ctx context.Context, cs content.Store, name string, target ocispec.Descriptor, archive *archiveBlobs) (importCheck, error) {
	broken := &BrokenImageError{Image: name}
	why := func(d ocispec.Descriptor) string {
		if archive != nil && archive.carries(d.Digest) {
			return fmt.Sprintf("%s does not match its digest (its bytes hash to something else)", d.Digest)
		}
		return fmt.Sprintf("%s is missing from the archive", d.Digest)
	}
	g, err := walkGraph(ctx, cs, target)
	if err != nil {
		broken.Problems = append(broken.Problems, err.Error())
		return importCheck{}, broken
	}
	for _, n := range g.order {
		if n.present && n.info.Size != n.desc.Size {
			broken.Problems = append(broken.Problems, fmt.Sprintf("%s has %d bytes, not the %d its descriptor says", n.desc.Digest, n.info.Size, n.desc.Size))
		}
	}
	if root := g.nodes[target.Digest]; !root.present {
		broken.Problems = append(broken.Problems, why(target))
	}
	if len(broken.Problems) > 0 {
		return importCheck{}, broken
	}
	ms, err := manifestsOf(ctx, cs, g, "")
	if err != nil {
		return importCheck{}, &BrokenImageError{Image: name, Problems: []string{err.Error()}}
	}
	var check importCheck
	for _, n := range g.order {
		if n.isManifest() {
			check.manifests = append(check.manifests, n.desc.Digest)
		}
	}
	complete := 0
	var lacking []ocispec.Descriptor
	for _, m := range ms {
		if m.Attestation {
			continue
		}
		if m.Available {
			complete++
			continue
		}
		check.missing = append(check.missing, m.Platform)
		lacking = append(lacking, m.Missing...)
	}
	if complete == 0 {
		for _, d := range lacking {
			p := why(d)
			if d.Platform != nil {
				p += " (" + platforms.Format(*d.Platform) + ")"
			}
			broken.Problems = append(broken.Problems, p)
		}
		if len(broken.Problems) == 0 {
			broken.Problems = append(broken.Problems, "it has no platform manifest")
		}
		return importCheck{}, broken
	}
	return check, nil
}
