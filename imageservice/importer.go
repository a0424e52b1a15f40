package imageservice

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOption configures Import.
type ImportOption func(*importOptions)

type importOptions struct {
	baseName  string
	platforms []ocispec.Platform
	dangling  bool
	dropped   func(DroppedReferrer) // WithDroppedReferrers
}

// WithDanglingNames imports an image the archive gives no name (docker
// save by ID), and that is not a referrer of another image of the
// archive, as a dangling image (DanglingName), as docker load does,
// instead of refusing it (UnnamedImageError).
func WithDanglingNames() ImportOption {
	return func(o *importOptions) { o.dangling = true }
}

// WithImportPlatforms keeps only the manifests of these platforms (and
// their content), as docker load --platform does on dockerd's containerd
// store: each image keeps its target (the archive's index), whose other
// platforms are left out of the store. An image that provides none of
// them (with all its content) is a PlatformNotLoadedError and nothing is
// imported.
func WithImportPlatforms(ps ...ocispec.Platform) ImportOption {
	return func(o *importOptions) {
		for _, p := range ps {
			o.platforms = append(o.platforms, platforms.Normalize(p))
		}
	}
}

// WithBaseName names images whose archive gives only a tag
// (org.opencontainers.image.ref.name "1.0") as baseName:tag (default: none;
// such images are an UnnamedImageError).
func WithBaseName(repo string) ImportOption {
	return func(o *importOptions) { o.baseName = repo }
}

// Imported is one image created or updated by Import.
type Imported struct {
	Name   string
	Target ocispec.Descriptor
	// Missing lists the platforms of a partial index whose content the
	// archive lacks (skopeo and crane make such archives of one platform).
	Missing []ocispec.Platform
	// Replaced is the target the name had before, when the import moved
	// it to another image.
	Replaced digest.Digest
	// Referrers is how many referrers of the image (signatures, SBOMs:
	// unnamed manifests of the archive whose subject is the image or one
	// of its manifests, and theirs) the store keeps with it.
	Referrers int
}

// Import loads an OCI image layout (directory or tar) or a `docker save`
// archive (tar, optionally gzipped) at path into the store, naming images
// as `ctr images import` does: io.containerd.image.name, else docker
// RepoTags, else org.opencontainers.image.ref.name. Re-importing the same
// archive changes nothing. On error nothing is left in the store.
func (s *Service) Import(ctx context.Context, path string, opts ...ImportOption) ([]Imported, error) {
	o, err := newImportOptions(opts)
	if err != nil {
		return nil, err
	}
	r, err := openArchive(ctx, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return s.importTar(ctx, r, path, o)
}

// newImportOptions applies opts and checks them.
func newImportOptions(opts []ImportOption) (importOptions, error) {
	var o importOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.baseName != "" {
		if _, err := reference.ParseNormalizedNamed(o.baseName); err != nil {
			return o, &ReferenceError{What: "base name", Value: o.baseName, Err: err}
		}
	}
	return o, nil
}

// ImportStream is Import of an archive read from r (an OCI layout or
// `docker save` tar, gzipped or not), as `docker load` reads standard
// input; source names it in errors ("stdin"). It returns when ctx ends
// even while a Read of r waits for data; r is then read once more, aside,
// and the bytes dropped.
func (s *Service) ImportStream(ctx context.Context, r io.Reader, source string, opts ...ImportOption) ([]Imported, error) {
	o, err := newImportOptions(opts)
	if err != nil {
		return nil, err
	}
	ir := interruptible(ctx, r)
	defer ir.Close()
	tr, err := decompressed(ir)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", source, err)
	}
	return s.importTar(ctx, tr, source, o)
}

// importTar imports the tar stream r; path names it in errors.
func (s *Service) importTar(ctx context.Context, r io.Reader, path string, o importOptions) ([]Imported, error) {
	ctx = s.withNamespace(ctx)
	var out []Imported
	err := s.withLease(ctx, func(ctx context.Context) (err error) {
		// A failed import removes its partial ingests itself, before its
		// lease goes: garbage collection may not run (a full disk).
		ingests := newOwnedIngests(s.content)
		defer func() {
			if err != nil {
				ingests.abortStarted(ctx)
			}
		}()
		stream, watched := watchArchive(r)
		index, err := archive.ImportIndex(ctx, ingests, stream)
		watched.finish(stream, err == nil)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("import %s: %w", path, err)
			}
			return notAnArchive(path, watched.entries(), err)
		}
		var named []Imported
		var unnamed []ocispec.Descriptor
		var matcher platforms.Matcher
		if len(o.platforms) > 0 {
			matcher = platforms.Any(o.platforms...)
		}
		handler := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			if desc.Digest != index.Digest {
				children, err := images.Children(ctx, s.content, desc)
				if errdefs.IsNotFound(err) {
					return nil, images.ErrSkipDesc // partial archive: keep what is there
				}
				return children, err
			}
			b, err := content.ReadBlob(ctx, s.content, desc)
			if err != nil {
				return nil, err
			}
			var idx ocispec.Index
			if err := json.Unmarshal(b, &idx); err != nil {
				return nil, fmt.Errorf("decode index of %s: %w", path, err)
			}
			for _, m := range idx.Manifests {
				name, err := importName(m.Annotations, o.baseName)
				if err != nil {
					return nil, err
				}
				if name == "" {
					unnamed = append(unnamed, m)
					continue
				}
				named = append(named, Imported{Name: name, Target: m})
			}
			return idx.Manifests, nil
		})
		// With platforms, an index's other manifests get no gc.ref label:
		// their content goes when the lease does.
		if err := images.WalkNotEmpty(ctx, images.SetChildrenLabels(s.content, images.FilterPlatforms(handler, matcher)), index); err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		if o.dangling {
			for _, u := range unnamed {
				if (images.IsManifestType(u.MediaType) || images.IsIndexType(u.MediaType)) && !s.isReferrerIn(ctx, u) {
					named = append(named, Imported{Name: DanglingName(u.Digest), Target: u})
				}
			}
		}
		if len(named) == 0 {
			return fmt.Errorf("import %s: %w", path, &UnnamedImageError{Unnamed: len(unnamed)})
		}
		// Unnamed manifests whose subject the archive carries are
		// referrers (signatures, SBOMs): kept through their subject.
		if err := s.importReferrers(ctx, unnamed, o.dropped); err != nil {
			return fmt.Errorf("import %s: referrers: %w", path, err)
		}
		for i, im := range named {
			im.Target.Annotations = nil
			check, err := checkImported(ctx, s.content, im.Name, im.Target, watched)
			if err != nil {
				return fmt.Errorf("import %s: %w", path, err)
			}
			named[i].Missing = check.missing
			named[i].Referrers = countReferrers(ctx, s.content, check.manifests)
		}
		if matcher != nil {
			if err := s.providesPlatforms(ctx, named, o.platforms, matcher); err != nil {
				return fmt.Errorf("import %s: %w", path, err)
			}
		}
		for _, im := range named {
			im.Target.Annotations = nil
			if old, err := s.images.Get(ctx, im.Name); err == nil && old.Target.Digest != im.Target.Digest {
				im.Replaced = old.Target.Digest
			}
			if err := s.putImage(ctx, images.Image{Name: im.Name, Target: im.Target}); err != nil {
				return err
			}
			if !IsDangling(im.Name) {
				if err := s.dropDangling(ctx, im.Target.Digest); err != nil {
					return err
				}
			}
			out = append(out, im)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// isReferrerIn says whether the unnamed manifest u of an archive is a
// referrer whose subject the archive carries (importReferrers keeps it
// through its subject).
func (s *Service) isReferrerIn(ctx context.Context, u ocispec.Descriptor) bool {
	_, subject, err := describeReferrer(ctx, s.content, u.Digest)
	if err != nil || subject == nil {
		return false
	}
	_, err = s.content.Info(ctx, subject.Digest)
	return err == nil
}

// providesPlatforms checks that each image has, with all its content, a
// manifest of one of the platforms ps (matched by m); the platforms it
// does not keep are not reported missing.
func (s *Service) providesPlatforms(ctx context.Context, named []Imported, ps []ocispec.Platform, m platforms.Matcher) error {
	var lacking []string
	for i, im := range named {
		named[i].Missing = nil
		ms, err := walkManifests(ctx, s.content, im.Target)
		if err != nil {
			return err
		}
		found := false
		for _, mf := range ms {
			if !mf.Attestation && mf.Available && m.Match(mf.Platform) {
				found = true
				break
			}
		}
		if !found {
			lacking = append(lacking, im.Name)
		}
	}
	if len(lacking) > 0 {
		return &PlatformNotLoadedError{Images: lacking, Wanted: ps}
	}
	return nil
}

// importName picks the image name from an index entry's annotations.
func importName(a map[string]string, baseName string) (string, error) {
	if n := a[images.AnnotationImageName]; n != "" {
		return normalizeName(n)
	}
	n := a[ocispec.AnnotationRefName]
	if n == "" {
		return "", nil
	}
	// A ref name with a slash or colon is a reference; otherwise a tag.
	if hasSlashOrColon(n) {
		return normalizeName(n)
	}
	if baseName == "" {
		return "", &UnnamedImageError{Tag: n}
	}
	return normalizeName(baseName + ":" + n)
}

func hasSlashOrColon(s string) bool {
	for _, c := range s {
		if c == '/' || c == ':' {
			return true
		}
	}
	return false
}

func normalizeName(n string) (string, error) {
	named, err := reference.ParseNormalizedNamed(n)
	if err != nil {
		return "", &ReferenceError{What: "image name in archive", Value: n, Err: err}
	}
	return reference.TagNameOnly(named).String(), nil
}

// openArchive opens path as a tar stream: a directory (OCI layout) is
// tarred on the fly; a gzipped file is decompressed. A named pipe is
// opened as soon as a writer opens it, or not at all if ctx ends first.
func openArchive(ctx context.Context, path string) (io.ReadCloser, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(path, ocispec.ImageLayoutFile)); err != nil {
			why := fmt.Sprintf("the directory has no %s file, so it is no OCI image layout", ocispec.ImageLayoutFile)
			if _, err := os.Stat(filepath.Join(path, "manifest.json")); err == nil {
				why += " (its manifest.json reads like an unpacked docker save archive: import the archive itself, or a tar of the directory)"
			}
			return nil, invalidArchive{fmt.Sprintf("import %s: not an image archive: %s; %s", path, why, importFormats)}
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarDir(path, pw)) }()
		ir := interruptible(ctx, pr)
		return readCloser{Reader: ir, close: func() error { ir.Close(); return pr.Close() }}, nil
	}
	var f *os.File
	if fi.Mode()&fs.ModeNamedPipe != 0 {
		f, err = openPipe(ctx, path)
	} else {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() }) // a pipe's read waiting for data ends
	ir := interruptible(ctx, f)
	closeAll := func() error { stop(); ir.Close(); return f.Close() }
	r, err := decompressed(ir)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return readCloser{Reader: r, close: closeAll}, nil
}

// openPipe opens the named pipe at path for reading: open(2) waits for a
// writer, so it runs aside; when ctx ends first, the open is let through
// by a writer of our own that opens and closes at once, and the file
// closed.
func openPipe(ctx context.Context, path string) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	done := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		done <- opened{f, err}
	}()
	select {
	case o := <-done:
		return o.f, o.err
	case <-ctx.Done():
	}
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case o := <-done:
				if o.f != nil {
					o.f.Close()
				}
				return
			case <-tick.C:
				// Fails (ENXIO) until the open above waits in the kernel.
				if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
			}
		}
	}()
	return nil, fmt.Errorf("open %s: no writer opened the named pipe: %w", path, ctx.Err())
}

// interruptible returns a reader of r whose Read ends with ctx's error as
// soon as ctx ends, even while r's Read waits for data that does not come
// (stdin, a pipe) or never stops giving it (/dev/zero). r is read aside,
// by a goroutine that ends at r's next return after ctx ended or the
// reader was closed.
func interruptible(ctx context.Context, r io.Reader) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, r)
		pw.CloseWithError(err)
	}()
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	return readCloser{Reader: pr, close: func() error { stop(); return pr.Close() }}
}

// decompressed reads a tar stream from r, gunzipping it when it is gzip.
func decompressed(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(10)
	if len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	for _, c := range unreadCompressions {
		if c.is(magic) {
			return nil, fmt.Errorf("not an image archive: it is %s-compressed (decompress it first: %s); %s", c.name, c.undo, importFormats)
		}
	}
	return br, nil
}

// unreadCompressions are the compressions an archive may come in that
// import does not read (docker load does), known by their first bytes: the
// error names the one found and how to undo it.
var unreadCompressions = []struct {
	name, undo string
	is         func(head []byte) bool
}{
	{"zstd", "zstd -d", prefix(0x28, 0xb5, 0x2f, 0xfd)},
	{"xz", "xz -d", prefix(0xfd, '7', 'z', 'X', 'Z', 0x00)},
	// "BZh", the block size ('1' to '9'), the first block's magic (pi).
	{"bzip2", "bzip2 -d", func(head []byte) bool {
		return len(head) >= 10 && string(head[:3]) == "BZh" && head[3] >= '1' && head[3] <= '9' &&
			string(head[4:10]) == "\x31\x41\x59\x26\x53\x59"
	}},
}

// prefix matches the data that starts with these bytes.
func prefix(magic ...byte) func([]byte) bool {
	return func(head []byte) bool { return bytes.HasPrefix(head, magic) }
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

func tarDir(root string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: info.Size(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// importFormats names what import reads, for the error that says an
// archive is none of them.
const importFormats = "import reads an OCI image layout (a directory, or a tar of one) or a docker save archive, either one gzipped or not"

// invalidArchive is an archive import cannot read, in words that need no
// more; it is an errdefs.ErrInvalidArgument.
type invalidArchive struct{ msg string }

func (e invalidArchive) Error() string { return e.msg }
func (e invalidArchive) Unwrap() error { return errdefs.ErrInvalidArgument }

// notAnArchive is the error for an archive containerd's importer refused,
// saying what is wrong with it in a user's words, then what import reads.
func notAnArchive(path string, entries int, err error) error {
	var why string
	switch {
	case entries == 0:
		// Not a tar file; or an empty one: /dev/zero is two blocks of
		// zeros, a tar's end, and nothing before it.
		why = "no file could be read from it"
	case errors.Is(err, io.ErrUnexpectedEOF):
		why = "the archive ends in the middle of a file (cut short?)"
	case strings.Contains(err.Error(), "missing index.json"):
		why = "it has an oci-layout file but no index.json (cut short?)"
	case strings.Contains(err.Error(), "unrecognized image format"):
		why = "it has neither index.json (OCI) nor manifest.json (docker save)"
	default:
		return fmt.Errorf("import %s: %w", path, err)
	}
	return fmt.Errorf("import %s: not an image archive: %s (%w); %s", path, why, err, importFormats)
}
