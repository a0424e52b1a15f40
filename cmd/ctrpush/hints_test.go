package main

import (
	"fmt"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/imageservice"
)

// A manifest refused over its foreign layers gets the registry setting
// and the flag that fix it; the library's own words name neither.
func TestForeignLayersHint(t *testing.T) {
	re := &imageservice.RegistryError{Op: "put manifest sha256:aa to r/a:1", Status: 500, Code: "UNKNOWN"}
	fl := &imageservice.ForeignLayersError{Manifest: "sha256:aa", Err: re,
		Layers: []ocispec.Descriptor{{Digest: "sha256:bb", URLs: []string{"https://foreign.example.com/bb"}}}}
	got := message(fmt.Errorf("push a:1: %w", fl))
	for _, want := range []string{"sha256:bb (https://foreign.example.com/bb)", "validation.manifests.urls", "--allow-nondistributable-artifacts"} {
		if !strings.Contains(got, want) {
			t.Fatalf("message %q does not say %q", got, want)
		}
	}
	if lib := fl.Error(); strings.Contains(lib, "--") || strings.Contains(lib, "validation.") {
		t.Fatalf("library message gives advice: %q", lib)
	}
}
