package imageservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/internal/verify"
	"github.com/ctrpush/ctrpush/progress"
)

// Compression formats for WithCompression.
const (
	CompressionZstd = "zstd"
	CompressionGzip = "gzip"
)

// Default compression levels: zstd's default (3, klauspost/compress's
// SpeedDefault) and gzip's (6).
const (
	DefaultZstdLevel = 3
	DefaultGzipLevel = 6
)

// Compression asks a push to publish layers compressed with Format.
type Compression struct {
	// Format is CompressionZstd or CompressionGzip.
	Format string
	// Level is the compression level (zstd 1–22, gzip 1–9; 0: the
	// format's default).
	Level int
	// Force recompresses every layer, also those already in Format;
	// otherwise only layers in another format (an uncompressed layer
	// always) are.
	Force bool
}

// WithCompression publishes the image's layers compressed as c asks: the
// converted layers are written to the store too, linked to their source
// (a label naming the converted digest per format and level, which also
// keeps the converted blob as long as its source), so the next push of
// the image reuses them and mounts them in another repository. The
// manifests follow (layer media types; a Docker manifest becomes OCI
// when its layers are zstd, which Docker's types cannot name; the
// config's diff_ids stay, as the uncompressed content is the same), so
// the pushed image has a new digest. Default: no conversion, the
// image's own digest. Push and PlanPush; it excludes WithReferrers
// (referrers name the image's own digests).
func WithCompression(c Compression) TransferOption {
	return func(o *transferOptions) error {
		switch c.Format {
		case CompressionZstd:
			if c.Level == 0 {
				c.Level = DefaultZstdLevel
			}
			if c.Level < 1 || c.Level > 22 {
				return &OptionError{Option: "Compression.Level", Value: c.Level, Err: errors.New("zstd levels are 1 to 22")}
			}
		case CompressionGzip:
			if c.Level == 0 {
				c.Level = DefaultGzipLevel
			}
			if c.Level < 1 || c.Level > 9 {
				return &OptionError{Option: "Compression.Level", Value: c.Level, Err: errors.New("gzip levels are 1 to 9")}
			}
		default:
			return &OptionError{Option: "WithCompression", Value: c.Format, Err: errors.New("the format must be zstd or gzip")}
		}
		o.compression = &c
		return nil
	}
}

// layerCompression is how a layer media type is compressed: "" for none,
// "gzip", "zstd"; ok is false for what is not a tar layer (or a
// non-distributable one, never converted).
func layerCompression(mediaType string) (format string, ok bool) {
	if images.IsNonDistributable(mediaType) {
		return "", false
	}
	switch mediaType {
	case ocispec.MediaTypeImageLayer, images.MediaTypeDockerSchema2Layer:
		return "", true
	case ocispec.MediaTypeImageLayerGzip, images.MediaTypeDockerSchema2LayerGzip:
		return CompressionGzip, true
	case ocispec.MediaTypeImageLayerZstd, images.MediaTypeDockerSchema2LayerZstd:
		return CompressionZstd, true
	}
	return "", false
}

// convertedLabel is the label on a source layer naming its converted copy
// in format at level; a gc.ref.content label, so garbage collection keeps
// the copy as long as the source.
func convertedLabel(c *Compression) string {
	return fmt.Sprintf("containerd.io/gc.ref.content.ctrpush.compressed.%s-%d", c.Format, c.Level)
}

// uncompressedLabel names a layer's uncompressed digest (its diff ID), as
// containerd's unpacker reads it.
const uncompressedLabel = "containerd.io/uncompressed"

// compressor converts the layers of one push, each digest once.
type compressor struct {
	s    *Service
	cs   content.Store
	c    *Compression
	sink progress.Sink
	w    *ownedIngests

	mu   sync.Mutex
	done map[digest.Digest]*convertedLayer
	// manifests maps each converted manifest to its new descriptor.
	manifests map[digest.Digest]ocispec.Descriptor
	// early is handed each layer compressed now, to send it at once.
	early func(ocispec.Descriptor)
	hooks *compressHooks
	// converted counts the layers compressed now; reused those whose
	// copy the store had.
	converted, reused int
}

type convertedLayer struct {
	once sync.Once
	desc ocispec.Descriptor
	err  error
}

// layer returns desc compressed as asked (desc itself when it needs no
// conversion), in a manifest of mediaType.
func (z *compressor) layer(ctx context.Context, desc ocispec.Descriptor, manifestType string) (ocispec.Descriptor, error) {
	from, ok := layerCompression(desc.MediaType)
	if !ok || from == z.c.Format && !z.c.Force {
		return desc, nil
	}
	z.mu.Lock()
	cl, ok := z.done[desc.Digest]
	if !ok {
		cl = &convertedLayer{}
		z.done[desc.Digest] = cl
	}
	z.mu.Unlock()
	cl.once.Do(func() {
		if z.hooks != nil && z.hooks.beforeConvert != nil {
			z.hooks.beforeConvert(desc.Digest)
		}
		var fresh bool
		cl.desc, fresh, cl.err = z.convert(ctx, desc, from)
		if cl.err == nil && fresh && z.early != nil {
			d := desc
			d.Digest, d.Size, d.MediaType, d.Annotations = cl.desc.Digest, cl.desc.Size, z.mediaType(manifestType), nil
			z.early(d)
		}
	})
	if cl.err != nil {
		return ocispec.Descriptor{}, cl.err
	}
	out := desc
	out.Digest, out.Size, out.MediaType = cl.desc.Digest, cl.desc.Size, z.mediaType(manifestType)
	return out, nil
}

// mediaType is a converted layer's type in a manifest of manifestType.
func (z *compressor) mediaType(manifestType string) string {
	if z.c.Format == CompressionGzip {
		if manifestType == images.MediaTypeDockerSchema2Manifest {
			return images.MediaTypeDockerSchema2LayerGzip
		}
		return ocispec.MediaTypeImageLayerGzip
	}
	return ocispec.MediaTypeImageLayerZstd
}

func (z *compressor) emit(desc ocispec.Descriptor, state progress.State, converted digest.Digest) {
	z.sink.Emit(progress.Event{Transfer: &progress.Transfer{ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(),
		Kind: progress.KindLayer, State: state, Total: desc.Size, Compression: z.c.Format, Converted: converted.String()}})
}

// compressHooks let a test control the conversion's timing.
type compressHooks struct {
	// beforeConvert runs before a layer is converted.
	beforeConvert func(digest.Digest)
}

// convert compresses layer desc (compressed with from, "" for none) into
// the store (fresh), or finds the copy a previous push made.
func (z *compressor) convert(ctx context.Context, desc ocispec.Descriptor, from string) (_ ocispec.Descriptor, fresh bool, _ error) {
	key := convertedLabel(z.c)
	if info, err := z.cs.Info(ctx, desc.Digest); err == nil && info.Labels[key] != "" {
		d, err := digest.Parse(info.Labels[key])
		if err == nil {
			if ci, err := z.cs.Info(ctx, d); err == nil {
				z.mu.Lock()
				z.reused++
				z.mu.Unlock()
				z.emit(desc, progress.Compressed, d)
				return ocispec.Descriptor{Digest: d, Size: ci.Size}, false, nil
			}
		}
	}
	z.emit(desc, progress.Compressing, "")
	ra, err := z.cs.ReaderAt(ctx, desc)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return ocispec.Descriptor{}, false, fmt.Errorf("layer %s is not in the store, so it cannot be compressed (pull it first): %w", desc.Digest, err)
		}
		return ocispec.Descriptor{}, false, fmt.Errorf("read layer %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	// The source's bytes are checked against its digest as they are read
	// (and read to their end below): a corrupt local layer never becomes a
	// copy published under a digest of its own.
	raw := verify.Reader(io.NewSectionReader(ra, 0, desc.Size), desc.Digest, desc.Size)
	tarStream := raw
	switch from {
	case CompressionGzip:
		zr, err := pgzip.NewReader(tarStream)
		if err != nil {
			return ocispec.Descriptor{}, false, fmt.Errorf("layer %s is not gzip: %w", desc.Digest, err)
		}
		defer zr.Close()
		tarStream = zr
	case CompressionZstd:
		zr, err := zstd.NewReader(tarStream)
		if err != nil {
			return ocispec.Descriptor{}, false, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		defer zr.Close()
		tarStream = zr
	}
	ref := fmt.Sprintf("compress-%s-%s-%d", desc.Digest.Encoded(), z.c.Format, z.c.Level)
	w, err := content.OpenWriter(ctx, z.w, content.WithRef(ref))
	if err != nil {
		return ocispec.Descriptor{}, false, fmt.Errorf("write the compressed copy of %s: %w", desc.Digest, err)
	}
	defer w.Close()
	if err := w.Truncate(0); err != nil {
		return ocispec.Descriptor{}, false, err
	}
	out := digest.SHA256.Digester()
	counted := &countingWriter{w: io.MultiWriter(w, out.Hash())}
	zw, put, err := encoder(z.c, counted)
	if err != nil {
		return ocispec.Descriptor{}, false, err
	}
	defer put()
	diffID := digest.SHA256.Digester()
	if _, err := io.Copy(zw, io.TeeReader(tarStream, diffID.Hash())); err != nil {
		zw.Close()
		return ocispec.Descriptor{}, false, fmt.Errorf("compress layer %s: %w", desc.Digest, err)
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, false, fmt.Errorf("compress layer %s: %w", desc.Digest, err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil { // what a decompressor left unread
		return ocispec.Descriptor{}, false, fmt.Errorf("compress layer %s: %w", desc.Digest, err)
	}
	d := out.Digest()
	labels := map[string]string{uncompressedLabel: diffID.Digest().String()}
	if err := w.Commit(ctx, counted.n, d, content.WithLabels(labels)); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispec.Descriptor{}, false, fmt.Errorf("store the compressed copy of %s: %w", desc.Digest, err)
	}
	if _, err := z.cs.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{key: d.String()}}, "labels."+key); err != nil {
		return ocispec.Descriptor{}, false, fmt.Errorf("link layer %s to its compressed copy: %w", desc.Digest, err)
	}
	z.mu.Lock()
	z.converted++
	z.mu.Unlock()
	z.emit(desc, progress.Compressed, d)
	return ocispec.Descriptor{Digest: d, Size: counted.n}, true, nil
}

// encoders keeps zstd encoders for reuse, per level: a new one per layer
// allocates its buffers again.
var encoders sync.Map // Compression{Format, Level} → *sync.Pool

// encoder is a compressor for c writing to w, and what gives it back once
// closed.
func encoder(c *Compression, w io.Writer) (io.WriteCloser, func(), error) {
	key := Compression{Format: c.Format, Level: c.Level}
	p, _ := encoders.LoadOrStore(key, &sync.Pool{})
	pool := p.(*sync.Pool)
	switch c.Format {
	case CompressionZstd:
		if e, ok := pool.Get().(*zstd.Encoder); ok {
			e.Reset(w)
			return e, func() { pool.Put(e) }, nil
		}
		e, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.Level)), zstd.WithEncoderConcurrency(compressionThreads()))
		if err != nil {
			return nil, nil, err
		}
		return e, func() { pool.Put(e) }, nil
	default:
		// Not reused: pgzip's Reset sets its concurrency back to
		// GOMAXPROCS blocks.
		g, err := pgzip.NewWriterLevel(w, c.Level)
		if err == nil {
			err = g.SetConcurrency(1<<20, compressionThreads())
		}
		if err != nil {
			return nil, nil, err
		}
		return g, func() {}, nil
	}
}

// maxCompressionThreads bounds the goroutines compressing one layer: each
// holds a block in flight (pgzip 1 MiB blocks, zstd its own), and two
// layers are converted at once, so memory grows with them: with
// GOMAXPROCS 8 the bench measured a gzip push at 200 MiB of peak RSS,
// against 111 MiB with 2 (docs/BENCHMARKS.md).
const maxCompressionThreads = 4

func compressionThreads() int { return min(runtime.GOMAXPROCS(0), maxCompressionThreads) }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// manifest writes to the store the manifest m with its layers converted
// (desc itself when none is), and returns its descriptor as the index
// lists it (platform and annotations kept).
func (z *compressor) manifest(ctx context.Context, desc ocispec.Descriptor) (ocispec.Descriptor, error) {
	b, err := content.ReadBlob(ctx, z.cs, desc)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("read manifest %s: %w", desc.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	mt := desc.MediaType
	changed := false
	layers := make([]ocispec.Descriptor, len(m.Layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2) // each conversion uses every core already
	for i, l := range m.Layers {
		g.Go(func() error {
			nl, err := z.layer(gctx, l, mt)
			layers[i] = nl
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return ocispec.Descriptor{}, err
	}
	for i := range layers {
		if layers[i].Digest != m.Layers[i].Digest || layers[i].MediaType != m.Layers[i].MediaType {
			changed = true
		}
	}
	if !changed {
		return desc, nil
	}
	m.Layers = layers
	if z.c.Format == CompressionZstd && mt == images.MediaTypeDockerSchema2Manifest {
		// Docker schema 2 has no zstd layer type: the manifest becomes OCI.
		mt = ocispec.MediaTypeImageManifest
		m.MediaType = mt
		if m.Config.MediaType == images.MediaTypeDockerSchema2Config {
			m.Config.MediaType = ocispec.MediaTypeImageConfig
		}
	}
	labels := map[string]string{"containerd.io/gc.ref.content.config": m.Config.Digest.String()}
	for i, l := range m.Layers {
		labels[fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)] = l.Digest.String()
	}
	out := desc
	out.MediaType = mt
	return z.write(ctx, out, &m, labels)
}

// write stores v's JSON as the blob desc describes (digest and size set
// from the bytes) with labels.
func (z *compressor) write(ctx context.Context, desc ocispec.Descriptor, v any, labels map[string]string) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc.Digest, desc.Size = digest.FromBytes(b), int64(len(b))
	ref := "compress-" + desc.Digest.Encoded()
	if err := content.WriteBlob(ctx, z.w, ref, strings.NewReader(string(b)), desc, content.WithLabels(labels)); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispec.Descriptor{}, fmt.Errorf("store manifest %s: %w", desc.Digest, err)
	}
	return desc, nil
}

// compressTarget converts what t selected as o.compression asks and
// returns the target to push instead: a new walk of the converted root
// (its manifests and index written to the store under the push's lease),
// or t itself when no layer needs converting. t.chosen keeps the
// selection before conversion, for what the push says it reduced.
func (s *Service) compressTarget(ctx context.Context, t *pushTarget, img string, o *transferOptions, hold bool, early func(ocispec.Descriptor)) (*pushTarget, error) {
	w := newOwnedIngests(s.content)
	z := &compressor{s: s, cs: s.content, c: o.compression, sink: o.sink, w: w, done: map[digest.Digest]*convertedLayer{}, early: early, hooks: o.compressHooks}
	root, err := z.root(ctx, t)
	if err != nil {
		w.abortStarted(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("image %s: %w", img, err)
	}
	if root.Digest == t.sel.Descriptor.Digest {
		return t, nil
	}
	cs := newPushStore(s.content, s.blobs)
	g, err := walkGraph(ctx, cs, root)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img, err)
	}
	if hold {
		if err := s.holdGraph(ctx, g); err != nil {
			return nil, fmt.Errorf("image %s: %w", img, err)
		}
	}
	sel := selection{Descriptor: root, Whole: true, NewIndex: t.sel.NewIndex}
	for _, m := range t.sel.Manifests {
		if n, ok := z.manifests[m.Descriptor.Digest]; ok {
			m.Descriptor = n
		}
		sel.Manifests = append(sel.Manifests, m)
	}
	o.sink.Emit(progress.Event{Message: fmt.Sprintf("Compressed with %s (level %d): %d layer(s) converted now, %d from an earlier push; pushing %s (the local image %s is %s)",
		z.c.Format, z.c.Level, z.converted, z.reused, root.Digest, img, t.sel.Descriptor.Digest)})
	return &pushTarget{cs: cs, g: g, sel: sel, virtual: map[digest.Digest][]byte{}, chosen: t.sel, compressed: true}, nil
}

// root converts t's selected root: a manifest, or an index whose
// manifests are converted (attestations kept, their reference to the
// manifest they describe updated).
func (z *compressor) root(ctx context.Context, t *pushTarget) (ocispec.Descriptor, error) {
	z.manifests = map[digest.Digest]ocispec.Descriptor{}
	root := t.sel.Descriptor
	if images.IsManifestType(root.MediaType) {
		n, err := z.manifest(ctx, root)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		z.manifests[root.Digest] = n
		return n, nil
	}
	b, ok := t.virtual[root.Digest]
	if !ok {
		var err error
		if b, err = content.ReadBlob(ctx, z.cs, root); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("read index %s: %w", root.Digest, err)
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("index %s: %w", root.Digest, err)
	}
	entries := make([]ocispec.Descriptor, len(idx.Manifests))
	g, gctx := errgroup.WithContext(ctx)
	var mu sync.Mutex
	for i, e := range idx.Manifests {
		entries[i] = e
		if !images.IsManifestType(e.MediaType) || e.Annotations[annotationReferenceType] == attestationManifestType {
			continue
		}
		g.Go(func() error {
			n, err := z.manifest(gctx, e)
			if err != nil {
				return err
			}
			entries[i] = n
			mu.Lock()
			z.manifests[e.Digest] = n
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return ocispec.Descriptor{}, err
	}
	changed := false
	for i, e := range entries {
		if ref := e.Annotations[annotationReferenceDigest]; ref != "" {
			if n, ok := z.manifests[digest.Digest(ref)]; ok && n.Digest.String() != ref {
				a := make(map[string]string, len(e.Annotations))
				for k, v := range e.Annotations {
					a[k] = v
				}
				a[annotationReferenceDigest] = n.Digest.String()
				entries[i].Annotations = a
			}
		}
		if entries[i].Digest != idx.Manifests[i].Digest {
			changed = true
		}
	}
	if !changed {
		return root, nil
	}
	idx.Manifests = entries
	mt := root.MediaType
	if mt == images.MediaTypeDockerSchema2ManifestList && z.c.Format == CompressionZstd {
		mt = ocispec.MediaTypeImageIndex
		idx.MediaType = mt
	}
	labels := map[string]string{}
	for i, e := range entries {
		labels[fmt.Sprintf("containerd.io/gc.ref.content.m.%d", i)] = e.Digest.String()
	}
	out := root
	out.MediaType = mt
	return z.write(ctx, out, &idx, labels)
}
