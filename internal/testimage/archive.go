package testimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// NameAnnotations returns the annotations `docker buildx --output type=oci`
// writes for name: the containerd image name and the OCI ref name (the tag).
func NameAnnotations(name, tag string) map[string]string {
	a := map[string]string{}
	if name != "" {
		a[images.AnnotationImageName] = name
	}
	if tag != "" {
		a[ocispec.AnnotationRefName] = tag
	}
	return a
}

func (img *Image) layoutIndex(annotations map[string]string) []byte {
	target := img.Target
	target.Annotations = annotations
	b, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: append([]ocispec.Descriptor{target}, img.Referrers...)})
	return b
}

// WriteOCILayout writes an OCI image layout directory at dir whose
// index.json names the image with annotations (see NameAnnotations).
func (img *Image) WriteOCILayout(dir string, annotations map[string]string) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	files := map[string][]byte{
		ocispec.ImageLayoutFile: []byte(`{"imageLayoutVersion":"1.0.0"}`),
		ocispec.ImageIndexFile:  img.layoutIndex(annotations),
	}
	for _, d := range sortedDigests(img.Blobs) {
		files[filepath.Join("blobs", "sha256", d.Encoded())] = img.Blobs[d]
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// WriteOCITar writes the OCI image layout as a tar stream.
func (img *Image) WriteOCITar(w io.Writer, annotations map[string]string) error {
	tw := tar.NewWriter(w)
	if err := addFile(tw, ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := addFile(tw, ocispec.ImageIndexFile, img.layoutIndex(annotations)); err != nil {
		return err
	}
	for _, d := range sortedDigests(img.Blobs) {
		if err := addFile(tw, "blobs/sha256/"+d.Encoded(), img.Blobs[d]); err != nil {
			return err
		}
	}
	return tw.Close()
}

// WriteDockerSave writes a `docker save` style archive (manifest.json with
// Config, RepoTags and Layers) of the manifest for platform p, tagged with
// repoTags.
func (img *Image) WriteDockerSave(w io.Writer, p string, repoTags ...string) error {
	m := img.Platform(p)
	blobPath := func(d digest.Digest) string { return "blobs/sha256/" + d.Encoded() }
	entry := struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{Config: blobPath(m.Config.Digest), RepoTags: repoTags}
	tw := tar.NewWriter(w)
	if err := addFile(tw, entry.Config, img.Blobs[m.Config.Digest]); err != nil {
		return err
	}
	for _, l := range m.Layers {
		entry.Layers = append(entry.Layers, blobPath(l.Digest))
		if err := addFile(tw, blobPath(l.Digest), img.Blobs[l.Digest]); err != nil {
			return err
		}
	}
	mj, _ := json.Marshal([]any{entry})
	if err := addFile(tw, "manifest.json", mj); err != nil {
		return err
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("tar %s: %w", name, err)
	}
	_, err := tw.Write(b)
	return err
}

// RootFS is a small root filesystem tar (an /etc/hostname and a
// /bin/hello script), what docker import takes.
func RootFS() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{{"etc/hostname", "imported\n"}, {"bin/hello", "#!/bin/sh\necho hello\n"}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			panic(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
