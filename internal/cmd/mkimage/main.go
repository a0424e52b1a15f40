// Command mkimage writes a deterministic sample image (see package
// testimage) as an OCI tar, an OCI layout directory or a docker save tar,
// for the demo and benchmarks.
//
//	mkimage -name 127.0.0.1:5000/demo/app:1.0 -platforms linux/amd64,linux/arm64 -out app.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/distribution/reference"

	"github.com/ctrpush/ctrpush/internal/testimage"
)

func main() {
	name := flag.String("name", "", "image name stored in the archive (required)")
	plats := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	format := flag.String("format", "oci-tar", "oci-tar, oci-dir or docker (docker save; first platform only)")
	out := flag.String("out", "", "output path (required)")
	layers := flag.Int("layers", 2, "layers per platform")
	size := flag.Int("layer-size", 64*1024, "bytes per layer")
	seed := flag.Uint64("seed", 1, "seed: different seeds give different images")
	flag.Parse()
	if *name == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "mkimage: -name and -out are required")
		os.Exit(2)
	}
	if err := run(*name, strings.Split(*plats, ","), *format, *out, *layers, *size, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(name string, plats []string, format, out string, layers, size int, seed uint64) error {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return err
	}
	named = reference.TagNameOnly(named)
	tag := named.(reference.Tagged).Tag()
	img, err := testimage.New(testimage.Spec{Platforms: plats, Layers: layers, LayerSize: int64(size), Seed: seed, SharedLayers: 1})
	if err != nil {
		return err
	}
	ann := testimage.NameAnnotations(named.String(), tag)
	switch format {
	case "oci-dir":
		return img.WriteOCILayout(out, ann)
	case "oci-tar", "docker":
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		if format == "docker" {
			err = img.WriteDockerSave(f, plats[0], reference.FamiliarString(named))
		} else {
			err = img.WriteOCITar(f, ann)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return fmt.Errorf("unknown format %q", format)
}
