package imageservice

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/dockerchanges"
)

// RootFSOptions says what ImportRootFS makes of a root filesystem.
type RootFSOptions struct {
	// Name is the image's name ("repo[:tag]", latest when no tag); empty
	// makes a dangling image (DanglingName), as docker import without a
	// repository does.
	Name string
	// Platform is the image's (default: the service's host platform).
	Platform *ocispec.Platform
	// Message is the comment of the image's one history entry.
	Message string
	// Changes are Dockerfile instructions applied to the image's config
	// (docker import --change): CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
	// STOPSIGNAL, USER, VOLUME, WORKDIR. Others are a dockerchanges.Error.
	Changes []string
}

// ImportRootFS makes an image of the root filesystem tar r (plain, gzip or
// zstd), as docker import does: one layer (the tar as it came when
// compressed, else gzip-compressed), an OCI config for the platform with
// the layer's diff ID, a history entry with the message and the changes
// applied, and an OCI manifest, which is the image's target (its ID). A
// stream that is not a tar archive is an error wrapping
// errdefs.ErrInvalidArgument. On error nothing is left in the store.
func (s *Service) ImportRootFS(ctx context.Context, r io.Reader, o RootFSOptions) (Imported, error) {
	ctx = s.withNamespace(ctx)
	name := ""
	if o.Name != "" {
		ref, err := reference.ParseNormalizedNamed(o.Name)
		if err != nil {
			return Imported{}, &ReferenceError{What: "repository", Value: o.Name, Err: err}
		}
		if _, ok := ref.(reference.Digested); ok {
			return Imported{}, &ReferenceError{What: "repository", Value: o.Name, Err: errors.New("an image is named by a tag, not a digest")}
		}
		name = reference.TagNameOnly(ref).String()
	}
	platform := s.host
	if o.Platform != nil {
		platform = platforms.Normalize(*o.Platform)
	}
	cfg, err := dockerchanges.Apply(ocispec.ImageConfig{}, o.Changes)
	if err != nil {
		return Imported{}, err
	}
	var out Imported
	err = s.withLease(ctx, func(ctx context.Context) error {
		layer, diffID, err := s.writeRootFS(ctx, r)
		if err != nil {
			return err
		}
		created := time.Now().UTC()
		config, err := s.writeJSON(ctx, ocispec.MediaTypeImageConfig, ocispec.Image{
			Created:  &created,
			Platform: platform,
			Config:   cfg,
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
			History:  []ocispec.History{{Created: &created, Comment: o.Message}},
		}, nil)
		if err != nil {
			return err
		}
		manifest, err := s.writeJSON(ctx, ocispec.MediaTypeImageManifest, ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    config,
			Layers:    []ocispec.Descriptor{layer},
		}, map[string]string{
			"containerd.io/gc.ref.content.config": config.Digest.String(),
			"containerd.io/gc.ref.content.l.0":    layer.Digest.String(),
		})
		if err != nil {
			return err
		}
		out = Imported{Name: name, Target: manifest}
		if name == "" {
			out.Name = DanglingName(manifest.Digest)
		}
		if old, err := s.images.Get(ctx, out.Name); err == nil && old.Target.Digest != manifest.Digest {
			out.Replaced = old.Target.Digest
		}
		if err := s.putImage(ctx, images.Image{Name: out.Name, Target: manifest, CreatedAt: created}); err != nil {
			return err
		}
		if name != "" {
			return s.dropDangling(ctx, manifest.Digest)
		}
		return nil
	})
	if err != nil {
		return Imported{}, err
	}
	return out, nil
}

// RootFSError says the stream given to ImportRootFS is not a root
// filesystem tar. It wraps errdefs.ErrInvalidArgument.
type RootFSError struct{ Err error }

func (e *RootFSError) Error() string {
	return "the root filesystem is not a tar archive (plain, gzip or zstd): " + e.Err.Error()
}

// Unwrap lets errdefs.IsInvalidArgument hold.
func (e *RootFSError) Unwrap() []error { return []error{e.Err, errdefs.ErrInvalidArgument} }

// writeRootFS stores the tar r as a layer blob — as it is when gzip or
// zstd, gzip-compressed when plain — checking it is a tar archive, and
// returns the layer's descriptor and diff ID (the digest of the tar).
func (s *Service) writeRootFS(ctx context.Context, r io.Reader) (ocispec.Descriptor, digest.Digest, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(10)
	if err != nil && !errors.Is(err, io.EOF) {
		return ocispec.Descriptor{}, "", fmt.Errorf("read the root filesystem: %w", err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	ref := "ctrpush-rootfs-" + hex.EncodeToString(id)
	w, err := content.OpenWriter(ctx, s.content, content.WithRef(ref))
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("store the layer: %w", err)
	}
	committed := false
	defer func() {
		w.Close()
		if !committed {
			_ = s.content.Abort(context.WithoutCancel(ctx), ref) // nothing half-written stays
		}
	}()
	blob := &countingDigester{d: digest.Canonical.Digester()}
	sink := io.MultiWriter(w, blob)
	diff := digest.Canonical.Digester()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip}
	switch c := compression.DetectCompression(magic); c {
	case compression.Uncompressed:
		gz := gzip.NewWriter(sink)
		if err := readTar(io.TeeReader(br, io.MultiWriter(diff.Hash(), gz))); err != nil {
			return ocispec.Descriptor{}, "", err
		}
		if err := gz.Close(); err != nil {
			return ocispec.Descriptor{}, "", fmt.Errorf("store the layer: %w", err)
		}
	case compression.Gzip, compression.Zstd:
		if c == compression.Zstd {
			desc.MediaType = ocispec.MediaTypeImageLayerZstd
		}
		in := io.TeeReader(br, sink)
		dec, err := compression.DecompressStream(in)
		if err != nil {
			return ocispec.Descriptor{}, "", &RootFSError{Err: err}
		}
		err = readTar(io.TeeReader(dec, diff.Hash()))
		dec.Close()
		if err != nil {
			return ocispec.Descriptor{}, "", err
		}
		if _, err := io.Copy(io.Discard, in); err != nil { // the rest of the stream, as it came
			return ocispec.Descriptor{}, "", fmt.Errorf("read the root filesystem: %w", err)
		}
	default:
		return ocispec.Descriptor{}, "", &RootFSError{Err: fmt.Errorf("unsupported compression %s", c.Extension())}
	}
	desc.Digest, desc.Size = blob.d.Digest(), blob.n
	labels := map[string]string{"containerd.io/uncompressed": diff.Digest().String()}
	if err := w.Commit(ctx, desc.Size, desc.Digest, content.WithLabels(labels)); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispec.Descriptor{}, "", fmt.Errorf("store the layer: %w", err)
	}
	committed = true
	return desc, diff.Digest(), nil
}

// readTar reads r to its end as a tar archive (an empty stream is an
// empty layer, as docker import takes it).
func readTar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &RootFSError{Err: err}
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("read the root filesystem: %w", err)
	}
	return nil
}

type countingDigester struct {
	d digest.Digester
	n int64
}

func (c *countingDigester) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.d.Hash().Write(p)
}

// writeJSON stores v as a blob of media type mt with labels.
func (s *Service) writeJSON(ctx context.Context, mt string, v any, labels map[string]string) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	var opts []content.Opt
	if labels != nil {
		opts = append(opts, content.WithLabels(labels))
	}
	if err := content.WriteBlob(ctx, s.content, desc.Digest.String(), bytes.NewReader(b), desc, opts...); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("store %s: %w", mt, err)
	}
	return desc, nil
}
