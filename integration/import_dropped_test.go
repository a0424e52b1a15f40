package integration

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/testimage"
)

// Import says which referrers of the archive it leaves out, and why: one
// whose subject is nowhere, one whose payload the archive lacks, and the
// signature of that one; the referrer with everything is kept.
func TestImportSaysWhichReferrersItDrops(t *testing.T) {
	t.Parallel()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 61})
	kept := img.AddReferrer(img.Target, "application/x.sbom", "sbom", []byte("sbom"))
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("an image not in the archive"), Size: 123}
	orphan := img.AddReferrer(absent, "application/x.orphan", "orphan", []byte("orphan"))
	partialPayload := []byte("payload the archive lacks")
	partial := img.AddReferrer(img.Target, "application/x.partial", "partial", partialPayload)
	sigOfPartial := img.AddReferrer(partial, "application/x.sig", "sig", []byte("sig"))
	delete(img.Blobs, digest.FromBytes(partialPayload))

	root := t.TempDir()
	r := mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", "example.com/dropped/app", "1.0"))
	for _, want := range []string{
		"referrer " + orphan.Digest.String() + " (application/x.orphan) of " + absent.Digest.String() + " not kept: its subject is neither in the archive nor in the store",
		"referrer " + partial.Digest.String() + " (application/x.partial) of " + img.Target.Digest.String() + " not kept: the archive lacks some of its content (missing " + digest.FromBytes(partialPayload).String() + ")",
		"referrer " + sigOfPartial.Digest.String() + " (application/x.sig) of " + partial.Digest.String() + " not kept: its subject, a referrer, is not kept",
		"1 referrer(s) kept with it",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("import does not say %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, kept.Digest.String()) {
		t.Errorf("the referrer kept is reported dropped:\n%s", r.stderr)
	}
}
