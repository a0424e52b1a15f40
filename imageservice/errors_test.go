package imageservice

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/store"
)

// An archive naming an image only by tag, or not at all, is an
// UnnamedImageError saying which; the base name fixes the first.
func TestImportUnnamed(t *testing.T) {
	st, err := store.OpenEmbedded(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(st.ContentStore(), st.ImageStore(), st.LeaseManager())
	if err != nil {
		t.Fatal(err)
	}
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 7})
	dir := t.TempDir()
	tagOnly, unnamed := filepath.Join(dir, "tag-only"), filepath.Join(dir, "unnamed")
	if err := img.WriteOCILayout(tagOnly, testimage.NameAnnotations("", "1.0")); err != nil {
		t.Fatal(err)
	}
	if err := img.WriteOCILayout(unnamed, nil); err != nil {
		t.Fatal(err)
	}

	_, err = svc.Import(t.Context(), tagOnly)
	var ue *UnnamedImageError
	if !errors.As(err, &ue) || ue.Tag != "1.0" || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tagOnly) || strings.Contains(err.Error(), "WithBaseName") {
		t.Fatalf("tag-only archive: %v, want an UnnamedImageError for tag 1.0 naming the archive (and no API name: the front ends give the hint)", err)
	}
	_, err = svc.Import(t.Context(), unnamed, WithBaseName("example.com/app"))
	if !errors.As(err, &ue) || ue.Tag != "" || ue.Unnamed != 1 || !strings.Contains(err.Error(), unnamed) {
		t.Fatalf("unnamed archive: %v, want an UnnamedImageError for 1 unnamed image naming the archive", err)
	}
	imported, err := svc.Import(t.Context(), tagOnly, WithBaseName("example.com/app"))
	if err != nil || len(imported) != 1 || imported[0].Name != "example.com/app:1.0" {
		t.Fatalf("with a base name: %+v, %v", imported, err)
	}
}

func TestOptionError(t *testing.T) {
	err := &OptionError{Option: "WithMaxRetries", Value: -1, Err: errors.New("must not be negative")}
	if got, want := err.Error(), "option WithMaxRetries(-1): must not be negative"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if !errdefs.IsInvalidArgument(err) {
		t.Fatal("an OptionError is not invalid argument")
	}
	err = &OptionError{Option: "WithAllPlatforms", Excludes: "WithPlatforms"}
	if got, want := err.Error(), "option WithAllPlatforms excludes WithPlatforms"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// No library message names a CLI flag or command.
func TestErrorsNameNoFlags(t *testing.T) {
	for _, err := range []error{
		&PlatformNotFoundError{Image: "a:1", Missing: testPlatforms("linux/arm64")},
		&PlatformConflictError{Image: "a:1", Matches: testPlatforms("linux/amd64", "linux/arm64")},
		&PlatformConflictError{Image: "a:1", Wanted: testPlatforms("linux/arm"), Matches: testPlatforms("linux/arm/v6", "linux/arm/v7")},
		&MissingContentError{Image: "a:1"},
		&UnnamedImageError{Tag: "1"}, &UnnamedImageError{Unnamed: 1},
		&store.InUseError{Root: "/r"},
		&store.ConnectError{Address: "/s", Err: os.ErrNotExist},
		&CertificateError{Registry: "r.example.com", Err: os.ErrInvalid},
	} {
		if msg := err.Error(); strings.Contains(msg, "--") || strings.Contains(msg, "ctrpush") {
			t.Errorf("%T: %q names a flag or command", err, msg)
		}
	}
}

func testPlatforms(ps ...string) []ocispec.Platform {
	var out []ocispec.Platform
	for _, p := range ps {
		out = append(out, platforms.MustParse(p))
	}
	return out
}
