package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/store"
)

// The CLI words library errors with its flags and commands, wherever the
// error sits in the chain; the library's own text names none.
func TestMessageAddsFlags(t *testing.T) {
	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"image not found", &imageservice.ImageNotFoundError{Name: "example.com/a:1", Namespace: "default"},
			"image example.com/a:1 not found in the store (namespace default); list local images with `ctrpush images`"},
		{"platform not found, some missing", &imageservice.PlatformNotFoundError{Image: "a:1", Wanted: []ocispec.Platform{{OS: "linux", Architecture: "s390x"}}, Present: []ocispec.Platform{amd64}, Missing: []ocispec.Platform{arm64}},
			"image a:1 has no content for linux/s390x in the store; present: linux/amd64; listed but missing: linux/arm64 (pull them with `ctrpush pull --platform`)"},
		{"platform not found, none missing", &imageservice.PlatformNotFoundError{Image: "a:1", Wanted: []ocispec.Platform{{OS: "linux", Architecture: "s390x"}}, Present: []ocispec.Platform{amd64}},
			"image a:1 has no content for linux/s390x in the store; present: linux/amd64"},
		{"host platform absent", &imageservice.PlatformConflictError{Image: "a:1", Matches: []ocispec.Platform{amd64, arm64}},
			"image a:1: only some platforms are in the store (linux/amd64, linux/arm64) and none matches this host; request a platform explicitly, or all platforms once the rest is pulled (--platform, --all-platforms)"},
		{"ambiguous platform", &imageservice.PlatformConflictError{Image: "a:1", Wanted: []ocispec.Platform{{OS: "linux", Architecture: "arm"}}, Matches: []ocispec.Platform{{OS: "linux", Architecture: "arm", Variant: "v6"}, {OS: "linux", Architecture: "arm", Variant: "v7"}}},
			"image a:1: platform linux/arm matches several manifests (linux/arm/v6, linux/arm/v7); request a more specific platform (--platform)"},
		{"missing content", &imageservice.MissingContentError{Image: "a:1", Missing: []ocispec.Descriptor{{Digest: "sha256:0123", Platform: &arm64}}},
			"image a:1: 1 blob(s) missing from the store: sha256:0123 (linux/arm64); pull the whole image, or request only platforms whose content is present (`ctrpush pull --all-platforms`, or --platform)"},
		{"archive names a tag only", fmt.Errorf("import x.tar: %w", &imageservice.UnnamedImageError{Tag: "1.0"}),
			`import x.tar: the archive names an image only by the tag "1.0", without its repository; give its repository with --base-name REPO`},
		{"archive names nothing", fmt.Errorf("import x.tar: %w", &imageservice.UnnamedImageError{Unnamed: 2}),
			"import x.tar: the archive names no image (2 image(s) without an io.containerd.image.name or org.opencontainers.image.ref.name annotation)"},
		{"store in use", &store.InUseError{Root: "/s", Waited: 2 * time.Second},
			"store /s is in use by another process: it held the store's metadata database (/s/metadata.db) for longer than the 2s a transaction waits; wait for it to finish or open another root (--root)"},
		{"daemon unreachable", &store.ConnectError{Address: "/c.sock", Err: errors.New("refused")},
			"connect to containerd at /c.sock: refused (is the daemon running?); choose another socket with --address, or the embedded store with --root"},
		{"options exclude each other", &imageservice.OptionError{Option: "WithAllPlatforms", Excludes: "WithPlatforms"},
			"--all-platforms: excludes --platform"},
		{"option value", fmt.Errorf("push a:1: %w", &imageservice.OptionError{Option: "WithMaxConcurrentUploads", Value: 0, Err: errors.New("must be at least 1")}),
			"push a:1: --max-concurrent-uploads 0: must be at least 1"},
		{"untrusted certificate", fmt.Errorf("push a:1 to r.example.com/a:1: %w", &imageservice.CertificateError{Registry: "r.example.com", Err: errors.New("x509: unknown authority")}),
			`push a:1 to r.example.com/a:1: the certificate of registry r.example.com is not trusted; trust its CA with ca = "/path/to/ca.pem" in <hosts dir>/r.example.com/hosts.toml, or skip verification for this registry only (--insecure-registry r.example.com): x509: unknown authority`},
		{"wrapped with a suffix", fmt.Errorf("push: %w (while pushing)", &imageservice.ImageNotFoundError{Name: "a:1", Namespace: "n"}),
			"push: image a:1 not found in the store (namespace n); list local images with `ctrpush images` (while pushing)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := message(tc.err); got != tc.want {
				t.Fatalf("message:\n got %q\nwant %q", got, tc.want)
			}
			// The library's own words name no flag and no command.
			if lib := tc.err.Error(); strings.Contains(lib, "--") || strings.Contains(lib, "ctrpush ") {
				t.Fatalf("library message names a flag or command: %q", lib)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"option error", &imageservice.OptionError{Option: "WithMaxRetries", Value: -1, Err: errors.New("must not be negative")}, exitUsage},
		{"wrapped option error", fmt.Errorf("push: %w", &imageservice.OptionError{Option: "WithAllPlatforms", Err: errors.New("excludes WithPlatforms")}), exitUsage},
		{"reference error", &imageservice.ReferenceError{What: "source", Value: "A", Err: errors.New("bad")}, exitUsage},
		{"usage error", usagef("bad"), exitUsage},
		// A registry's 400 is invalid argument too, but no bad usage.
		{"other invalid argument", fmt.Errorf("push: 400 Bad Request: %w", errdefs.ErrInvalidArgument), exitFailed},
		{"unnamed image", &imageservice.UnnamedImageError{Tag: "1"}, exitFailed},
		{"store in use", &store.InUseError{Root: "/s"}, exitFailed},
	}
	for _, tc := range cases {
		if got := exitCode(ctx, tc.err, true); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
	interrupted, cancel := context.WithCancelCause(ctx)
	cancel(errInterrupted)
	if got := exitCode(interrupted, context.Canceled, true); got != exitInterrupted {
		t.Errorf("interrupted: exit %d, want %d", got, exitInterrupted)
	}
}

// Bad transfer options: the library's OptionError, in the CLI's words.
func TestTransferOptionMessages(t *testing.T) {
	for _, tc := range []struct {
		opts                []imageservice.TransferOption
		option, wantMessage string
	}{
		{[]imageservice.TransferOption{imageservice.WithAllPlatforms(), imageservice.WithPlatforms("linux/amd64")}, "WithAllPlatforms", "--all-platforms: excludes --platform"},
		{[]imageservice.TransferOption{imageservice.WithMaxConcurrentUploads(0)}, "WithMaxConcurrentUploads", "--max-concurrent-uploads 0: must be at least 1"},
		{[]imageservice.TransferOption{imageservice.WithMaxRetries(-1)}, "WithMaxRetries", "--max-retries -1: must not be negative"},
		{[]imageservice.TransferOption{imageservice.WithDestination("")}, "WithDestination", "DEST: empty destination reference"},
	} {
		err := imageservice.CheckTransferOptions(tc.opts...)
		var oe *imageservice.OptionError
		if !errors.As(err, &oe) || oe.Option != tc.option || !errdefs.IsInvalidArgument(err) || exitCode(context.Background(), err, true) != exitUsage {
			t.Fatalf("%s: %v, want an OptionError about it (exit 2)", tc.option, err)
		}
		if got := message(err); got != tc.wantMessage {
			t.Fatalf("%s: message %q, want %q", tc.option, got, tc.wantMessage)
		}
	}
	if err := imageservice.CheckTransferOptions(imageservice.WithPlatforms("linux/amd64"), imageservice.WithMaxRetries(0)); err != nil {
		t.Fatal(err)
	}
}
