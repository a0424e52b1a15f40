// Setting up: building ctrpush and the pinned peers, writing each test
// image as an OCI layout and importing it, and what an image holds.

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/testimage"
)

// build compiles ctrpush and the pinned peers into the work directory.
func (b *bench) build() error {
	b.ctrpush = filepath.Join(b.bin, "ctrpush")
	cmd := exec.Command("go", "build", "-o", b.ctrpush, "github.com/ctrpush/ctrpush/cmd/ctrpush")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build ctrpush: %v\n%s", err, out)
	}
	if b.baselineRev != "" {
		if err := b.buildBaseline(); err != nil {
			return err
		}
	}
	cmd = exec.Command("go", "install", craneModule)
	cmd.Env = append(os.Environ(), "GOBIN="+b.bin, "GOFLAGS=")
	cmd.Dir = b.work // outside our module: the peer's own go.mod decides
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(b.log, "crane could not be built, skipped: %v\n%s", err, out)
	} else {
		b.crane = filepath.Join(b.bin, "crane")
	}
	return nil
}

// buildBaseline builds ctrpush as it was at b.baselineRev (git archive of
// that revision, built with its own go.mod).
func (b *bench) buildBaseline() error {
	src := filepath.Join(b.work, "baseline-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("sh", "-c", `git archive "$1" | tar -x -C "$2"`, "sh", b.baselineRev, src)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("export revision %s: %v\n%s", b.baselineRev, err, out)
	}
	b.baseline = filepath.Join(b.bin, "ctrpush-baseline")
	cmd = exec.Command("go", "build", "-o", b.baseline, "./cmd/ctrpush")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build ctrpush at %s: %v\n%s", b.baselineRev, err, out)
	}
	return nil
}

func (b *bench) prepare(bi *benchImage, i int) error {
	bi.dir = filepath.Join(b.work, fmt.Sprintf("image%d", i))
	img, err := testimage.NewOnDisk(bi.spec, bi.dir)
	if err != nil {
		return err
	}
	bi.img = img
	bi.local = fmt.Sprintf("bench.local/image%d:1", i)
	if err := img.WriteLayoutIndex(bi.dir, testimage.NameAnnotations(bi.local, "1")); err != nil {
		return err
	}
	for _, d := range b.blobs(bi) {
		bi.bytes += d.Size
	}
	for _, m := range append(img.Manifests, testimage.Manifest{Descriptor: img.Target}) {
		if m.Descriptor.Digest != img.Target.Digest || len(img.Manifests) > 1 {
			bi.bytes += m.Descriptor.Size
		}
	}
	if _, _, err := b.ctrpushRun("import", bi.dir); err != nil {
		return err
	}
	if b.daemon != nil {
		if _, _, err := b.daemonRun("import", bi.dir); err != nil {
			return err
		}
	}
	return nil
}

// blobs lists the image's configs and layers, each once.
func (b *bench) blobs(bi *benchImage) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	for _, m := range bi.img.Manifests {
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// manifests returns the manifests then the index (if any), with bytes.
func (b *bench) manifests(bi *benchImage) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, m := range bi.img.Manifests {
		out = append(out, m.Descriptor)
	}
	if len(bi.img.Manifests) > 1 || bi.img.Target.Digest != bi.img.Manifests[0].Descriptor.Digest {
		out = append(out, bi.img.Target)
	}
	return out
}

func (b *bench) idx(bi *benchImage) string { return strings.TrimPrefix(filepath.Base(bi.dir), "image") }
