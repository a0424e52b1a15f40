package main

import (
	"fmt"

	"github.com/ctrpush/ctrpush/imageservice"
)

// Help texts that state a default are built from the constants they state,
// so the two cannot drift apart (TestDocumentedDefaultsMatchTheCode holds
// the docs to the same constants).

// sizeText writes n bytes as docs/BEHAVIOUR.md and the README do: in the
// largest binary unit that divides it exactly, with a space ("512 MiB",
// "64 KiB"; "100 bytes" when no unit divides it).
func sizeText(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	unit := ""
	for _, u := range units {
		if n == 0 || n%1024 != 0 {
			break
		}
		n, unit = n/1024, u
	}
	if unit == "" {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// maxUploadsHelp is --max-concurrent-uploads's help; scope says what the
// bound is counted over (" per push" on serve). pflag adds "(default 64)".
func maxUploadsHelp(scope string) string {
	return fmt.Sprintf("blob uploads in flight%s at most, with no bound on their bytes; when not given, up to %d uploads and %s of blobs are in flight, and fewer to a registry close by",
		scope, imageservice.DefaultMaxConcurrentUploads, sizeText(imageservice.DefaultMaxBytesInFlight))
}

// chunkSizeHelp is --chunk-size's help.
var chunkSizeHelp = fmt.Sprintf("upload blobs in PATCH chunks of at most SIZE (e.g. 8MiB; at least %s), for every registry or HOST=SIZE for one (repeatable); default: one PUT per blob, chunks when a body is refused as too large",
	sizeText(imageservice.MinChunkSize))
