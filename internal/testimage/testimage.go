// Package testimage generates deterministic container images for tests,
// benchmarks and the demo: single-platform manifests, multi-platform indexes
// (optionally with buildx-style attestation manifests), written into a
// containerd content store, an OCI image layout directory, an OCI tar or a
// `docker save` tar.
//
// Layers are gzip streams (stored, not compressed) of a tar holding one file
// of pseudo-random bytes, so they are valid layers and incompressible.
package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	_ "crypto/sha256" // digest.FromBytes needs it registered
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Spec describes an image to generate.
type Spec struct {
	// Platforms of the image, e.g. "linux/amd64". One platform gives a
	// plain manifest unless Index is set; several give an index.
	Platforms []string
	// Index forces an index even for a single platform.
	Index bool
	// Layers per platform (default 1) and LayerSize in bytes (default 1 KiB).
	Layers    int
	LayerSize int64
	// SharedLayers layers (at the bottom) are identical across platforms.
	SharedLayers int
	// Attestations adds one buildx-style attestation manifest per platform.
	Attestations bool
	// Docker uses Docker schema2 media types instead of OCI ones.
	Docker bool
	// Seed makes different images with the same shape differ.
	Seed uint64
	// PlatformDetails, when set, gives platform i as it stands in its index
	// entry and its config, verbatim (a variant such as arm64's "v8" or an
	// os.version is kept, not normalised away); Platforms then only names
	// them for Platform().
	PlatformDetails []ocispec.Platform
	// EntryAnnotations are put on every platform manifest's index entry.
	EntryAnnotations map[string]string
	// ForeignLayers makes the bottom layers of every windows platform
	// non-distributable ("foreign"): Docker's foreign layer media type (or
	// OCI's non-distributable one) with a URL. Their bytes are in Blobs but
	// Foreign lists them, so a test can leave them out of a store.
	ForeignLayers int
	// Uncompressed makes the layers plain tars (as `docker save` holds
	// them), with the uncompressed layer media type.
	Uncompressed bool
	// CompressibleLayers makes the bottom layers of every platform hold a
	// compressible file instead of random bytes: a text of words drawn
	// at random from a short list (zstd and gzip make it 3.5–4× smaller).
	CompressibleLayers int
	// OtherIndexBytes writes the index with its keys sorted and indented,
	// as a tool other than Go's encoder may write it: re-serializing it
	// gives other bytes and another digest.
	OtherIndexBytes bool
}

// Manifest is one platform manifest of a generated image.
type Manifest struct {
	Descriptor ocispec.Descriptor // with Platform set
	Platform   ocispec.Platform
	Config     ocispec.Descriptor
	Layers     []ocispec.Descriptor
}

// Image is a generated image: its root descriptor and every blob.
type Image struct {
	Target      ocispec.Descriptor
	Manifests   []Manifest           // platform manifests, in index order
	Attestation []ocispec.Descriptor // attestation manifests, if any
	Blobs       map[digest.Digest][]byte
	// Foreign lists the non-distributable layers (see Spec.ForeignLayers).
	Foreign []ocispec.Descriptor
	// Referrers are OCI 1.1 artifacts (AddReferrer) a layout lists in its
	// index.json without a name, after the image.
	Referrers []ocispec.Descriptor
	// order keeps blob insertion order so writers are deterministic.
	order []digest.Digest
}

// AddReferrer adds an OCI 1.1 artifact manifest of artifactType whose
// subject is subject (the image's target, one of its manifests, or another
// referrer): the empty config and one layer holding payload, annotated
// with org.example.name = name. It returns the artifact's descriptor, as a
// referrers index lists it.
func (img *Image) AddReferrer(subject ocispec.Descriptor, artifactType, name string, payload []byte) ocispec.Descriptor {
	cfg := img.add(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	layer := img.add(artifactType, payload)
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	annotations := map[string]string{"org.example.name": name}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
		Config: cfg, Layers: []ocispec.Descriptor{layer}, Subject: &subj, Annotations: annotations}
	b, _ := json.Marshal(m)
	desc := img.add(ocispec.MediaTypeImageManifest, b)
	desc.ArtifactType, desc.Annotations = artifactType, annotations
	img.Referrers = append(img.Referrers, desc)
	return desc
}

// AddIndexReferrer adds an OCI 1.1 artifact index of artifactType whose
// subject is subject (a multi-platform signature bundle): one artifact
// manifest without subject per payload (the empty config and one layer
// holding it), listed with platforms[i]. It returns the index's descriptor,
// as a referrers index lists it, and its child manifests.
func (img *Image) AddIndexReferrer(subject ocispec.Descriptor, artifactType, name string, platforms []ocispec.Platform, payloads [][]byte) (ocispec.Descriptor, []ocispec.Descriptor) {
	var children []ocispec.Descriptor
	for i, payload := range payloads {
		cfg := img.add(ocispec.MediaTypeEmptyJSON, []byte("{}"))
		layer := img.add(artifactType, payload)
		m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
			Config: cfg, Layers: []ocispec.Descriptor{layer}}
		b, _ := json.Marshal(m)
		d := img.add(ocispec.MediaTypeImageManifest, b)
		d.ArtifactType = artifactType
		p := platforms[i]
		d.Platform = &p
		children = append(children, d)
	}
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	annotations := map[string]string{"org.example.name": name}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, ArtifactType: artifactType,
		Manifests: children, Subject: &subj, Annotations: annotations}
	b, _ := json.Marshal(idx)
	desc := img.add(ocispec.MediaTypeImageIndex, b)
	desc.ArtifactType, desc.Annotations = artifactType, annotations
	img.Referrers = append(img.Referrers, desc)
	return desc, children
}

// New generates the image described by spec.
func New(spec Spec) (*Image, error) {
	return build(spec, nil)
}

// NewOnDisk generates the image as an OCI image layout at dir, streaming
// layers to their files so an image of any size needs little memory. The
// returned Image holds only the JSON blobs in Blobs; WriteOCILayout must not
// be called on it (dir already is the layout, without index.json: call
// WriteLayoutIndex).
func NewOnDisk(spec Spec, dir string) (*Image, error) {
	if spec.Uncompressed {
		return nil, fmt.Errorf("testimage: NewOnDisk writes gzip layers; Uncompressed is for New")
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, err
	}
	writeFile := func(seed uint64, size int64, compressible bool) (ocispec.Descriptor, digest.Digest, error) {
		f, err := os.CreateTemp(blobs, "layer-")
		if err != nil {
			return ocispec.Descriptor{}, "", err
		}
		defer f.Close()
		dg := digest.SHA256.Digester()
		cw := &countWriter{w: io.MultiWriter(f, dg.Hash())}
		diffID, err := writeLayer(cw, seed, size, compressible)
		if err != nil {
			return ocispec.Descriptor{}, "", err
		}
		if err := os.Rename(f.Name(), filepath.Join(blobs, dg.Digest().Encoded())); err != nil {
			return ocispec.Descriptor{}, "", err
		}
		return ocispec.Descriptor{Digest: dg.Digest(), Size: cw.n}, diffID, nil
	}
	img, err := build(spec, writeFile)
	if err != nil {
		return nil, err
	}
	for d, b := range img.Blobs {
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
			return nil, err
		}
	}
	return img, os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// WriteLayoutIndex writes index.json of the layout at dir, naming the image.
func (img *Image) WriteLayoutIndex(dir string, annotations map[string]string) error {
	return os.WriteFile(filepath.Join(dir, ocispec.ImageIndexFile), img.layoutIndex(annotations), 0o644)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// build generates the image; onDisk, when set, writes each layer and
// returns its descriptor instead of keeping the bytes.
func build(spec Spec, onDisk func(seed uint64, size int64, compressible bool) (ocispec.Descriptor, digest.Digest, error)) (*Image, error) {
	if len(spec.Platforms) == 0 {
		spec.Platforms = []string{"linux/amd64"}
	}
	if spec.Layers == 0 {
		spec.Layers = 1
	}
	if spec.LayerSize == 0 {
		spec.LayerSize = 1024
	}
	written := map[uint64]ocispec.Descriptor{}
	img := &Image{Blobs: map[digest.Digest][]byte{}}
	mediaManifest, mediaConfig, mediaLayer, mediaIndex := ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageIndex
	if spec.Docker {
		mediaManifest, mediaConfig, mediaLayer, mediaIndex = images.MediaTypeDockerSchema2Manifest, images.MediaTypeDockerSchema2Config, images.MediaTypeDockerSchema2LayerGzip, images.MediaTypeDockerSchema2ManifestList
	}
	if spec.Uncompressed {
		mediaLayer = ocispec.MediaTypeImageLayer
		if spec.Docker {
			mediaLayer = images.MediaTypeDockerSchema2Layer
		}
	}
	var index []ocispec.Descriptor
	for pi, ps := range spec.Platforms {
		p, err := platforms.Parse(ps)
		if err != nil {
			return nil, err
		}
		if pi < len(spec.PlatformDetails) {
			p = spec.PlatformDetails[pi]
		}
		var layers []ocispec.Descriptor
		var diffIDs []digest.Digest
		for li := 0; li < spec.Layers; li++ {
			seed := spec.Seed*1_000_003 + uint64(pi+1)*10_007 + uint64(li)
			if li < spec.SharedLayers {
				seed = spec.Seed*1_000_003 + uint64(li)
			}
			compressible := li < spec.CompressibleLayers
			if onDisk == nil {
				blob, diffID := layer(seed, spec.LayerSize, compressible)
				if spec.Uncompressed {
					blob = uncompressedLayer(seed, spec.LayerSize, compressible)
				}
				ld := img.add(mediaLayer, blob)
				if p.OS == "windows" && li < spec.ForeignLayers {
					//lint:ignore SA1019 deprecated for new images, and exactly what the tests need to push
					ld.MediaType = ocispec.MediaTypeImageLayerNonDistributableGzip
					if spec.Docker {
						ld.MediaType = images.MediaTypeDockerSchema2LayerForeignGzip
					}
					ld.URLs = []string{"https://foreign.example.com/layers/" + ld.Digest.String()}
					img.Foreign = append(img.Foreign, ld)
				}
				layers = append(layers, ld)
				diffIDs = append(diffIDs, diffID)
				continue
			}
			d, ok := written[seed]
			if !ok {
				var err error
				var diffID digest.Digest
				if d, diffID, err = onDisk(seed, spec.LayerSize, compressible); err != nil {
					return nil, err
				}
				d.MediaType = mediaLayer
				d.Annotations = map[string]string{"diffid": diffID.String()}
				written[seed] = d
			}
			diffIDs = append(diffIDs, digest.Digest(d.Annotations["diffid"]))
			ld := d
			ld.Annotations = nil
			layers = append(layers, ld)
		}
		cfg, _ := json.Marshal(ocispec.Image{
			Platform: p,
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
			Config:   ocispec.ImageConfig{Cmd: []string{"/bin/true"}, Labels: map[string]string{"seed": fmt.Sprint(spec.Seed)}},
		})
		cfgDesc := img.add(mediaConfig, cfg)
		mb, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaManifest, Config: cfgDesc, Layers: layers})
		md := img.add(mediaManifest, mb)
		pp := p
		md.Platform = &pp
		if spec.EntryAnnotations != nil {
			md.Annotations = spec.EntryAnnotations
		}
		img.Manifests = append(img.Manifests, Manifest{Descriptor: md, Platform: p, Config: cfgDesc, Layers: layers})
		index = append(index, md)
	}
	if spec.Attestations {
		for _, m := range img.Manifests {
			stmt := img.add("application/vnd.in-toto+json", []byte(fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{"sha256":%q}}]}`, m.Descriptor.Digest.Encoded())))
			stmt.Annotations = map[string]string{"in-toto.io/predicate-type": "https://spdx.dev/Document"}
			cfg := img.add(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`))
			mb, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{stmt}})
			ad := img.add(ocispec.MediaTypeImageManifest, mb)
			ad.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
			ad.Annotations = map[string]string{
				"vnd.docker.reference.type":   "attestation-manifest",
				"vnd.docker.reference.digest": m.Descriptor.Digest.String(),
			}
			img.Attestation = append(img.Attestation, ad)
			index = append(index, ad)
		}
	}
	if len(spec.Platforms) == 1 && !spec.Index && !spec.Attestations {
		img.Target = img.Manifests[0].Descriptor
		img.Target.Platform = nil
		return img, nil
	}
	ib, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaIndex, Manifests: index})
	if spec.OtherIndexBytes {
		var generic map[string]any
		_ = json.Unmarshal(ib, &generic)
		ib, _ = json.MarshalIndent(generic, "", "  ")
	}
	img.Target = img.add(mediaIndex, ib)
	return img, nil
}

// MustNew is New for tests: it panics on a bad spec.
func MustNew(spec Spec) *Image {
	img, err := New(spec)
	if err != nil {
		panic(err)
	}
	return img
}

func (img *Image) add(mediaType string, b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	if _, ok := img.Blobs[d]; !ok {
		img.Blobs[d] = b
		img.order = append(img.order, d)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// writeLayer writes to w a gzip (no compression) tar holding one file of
// size pseudo-random bytes (words, when compressible), and returns the
// digest of the uncompressed tar. It streams: memory stays small whatever
// the size.
func writeLayer(w io.Writer, seed uint64, size int64, compressible bool) (digest.Digest, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	gw, _ := gzip.NewWriterLevel(w, gzip.NoCompression)
	diffID := digest.SHA256.Digester()
	tw := tar.NewWriter(io.MultiWriter(gw, diffID.Hash()))
	if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data-%d", seed), Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return "", err
	}
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		chunk := buf[:n]
		if compressible {
			fillWords(chunk, r)
		} else {
			for i := 0; i < len(chunk); i += 8 {
				v := r.Uint64()
				for j := 0; j < 8 && i+j < len(chunk); j++ {
					chunk[i+j] = byte(v >> (8 * j))
				}
			}
		}
		if _, err := tw.Write(chunk); err != nil {
			return "", err
		}
		left -= n
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gw.Close(); err != nil {
		return "", err
	}
	return diffID.Digest(), nil
}

// words are the words of a compressible layer's file.
var words = strings.Fields("the of and to in is was that for it with as his on be at by had are but from or have an they which one you were all her she")

// fillWords fills chunk with words drawn by r from a list of 32, each
// followed by a space (cut at the end of chunk).
func fillWords(chunk []byte, r *rand.Rand) {
	for i := 0; i < len(chunk); {
		v := r.Uint64()
		for k := 0; k < 12 && i < len(chunk); k++ {
			i += copy(chunk[i:], words[v&31])
			if i < len(chunk) {
				chunk[i] = ' '
				i++
			}
			v >>= 5
		}
	}
}

// uncompressedLayer is the tar of layer(seed, size), uncompressed: its
// digest is its diff ID.
func uncompressedLayer(seed uint64, size int64, compressible bool) []byte {
	b, _ := layer(seed, size, compressible)
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		panic(err)
	}
	return out
}

// layer returns a layer's bytes (see writeLayer) and its diff ID.
func layer(seed uint64, size int64, compressible bool) ([]byte, digest.Digest) {
	var b bytes.Buffer
	diffID, _ := writeLayer(&b, seed, size, compressible)
	return b.Bytes(), diffID
}

// Digests returns every blob digest in a stable order.
func (img *Image) Digests() []digest.Digest {
	out := append([]digest.Digest(nil), img.order...)
	return out
}

// Platform returns the manifest for platform p ("linux/arm64").
func (img *Image) Platform(p string) Manifest {
	want := platforms.MustParse(p)
	for _, m := range img.Manifests {
		if platforms.Format(platforms.Normalize(m.Platform)) == platforms.Format(want) {
			return m
		}
	}
	panic("testimage: no platform " + p)
}

// WriteToStore writes every blob into cs and, when is is not nil and name
// is set, creates (or updates) the image record name → Target. Blobs get the
// containerd GC reference labels so garbage collection keeps them.
func (img *Image) WriteToStore(ctx context.Context, cs content.Store, is images.Store, name string) error {
	for _, d := range img.order {
		b := img.Blobs[d]
		labels := gcLabels(img, d)
		if err := content.WriteBlob(ctx, cs, "testimage-"+d.Encoded(), bytes.NewReader(b), ocispec.Descriptor{Digest: d, Size: int64(len(b))}, content.WithLabels(labels)); err != nil {
			return fmt.Errorf("write blob %s: %w", d, err)
		}
	}
	if is == nil || name == "" {
		return nil
	}
	rec := images.Image{Name: name, Target: img.Target}
	if _, err := is.Update(ctx, rec, "target"); err != nil {
		if _, err := is.Create(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// gcLabels returns containerd.io/gc.ref.content.* labels for the children of
// blob d when d is a manifest or an index.
func gcLabels(img *Image, d digest.Digest) map[string]string {
	var probe struct {
		MediaType string               `json:"mediaType"`
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	if json.Unmarshal(img.Blobs[d], &probe) != nil {
		return nil
	}
	labels := map[string]string{}
	for i, m := range probe.Manifests {
		labels[fmt.Sprintf("containerd.io/gc.ref.content.m.%d", i)] = m.Digest.String()
	}
	if probe.Config != nil && probe.Config.Digest != "" {
		labels["containerd.io/gc.ref.content.config"] = probe.Config.Digest.String()
	}
	for i, l := range probe.Layers {
		labels[fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)] = l.Digest.String()
	}
	if len(labels) == 0 {
		return nil
	}
	return labels
}

// sortedDigests is a helper for writers that need a stable order.
func sortedDigests(m map[digest.Digest][]byte) []digest.Digest {
	out := make([]digest.Digest, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
