package imageservice

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReferenceError is a malformed image reference or platform given by the
// caller. It wraps errdefs.ErrInvalidArgument.
type ReferenceError struct {
	What  string // "source", "destination", "platform"
	Value string
	Err   error
}

func (e *ReferenceError) Error() string {
	return fmt.Sprintf("invalid %s %q: %v", e.What, e.Value, e.Err)
}

// Unwrap lets errors.Is(err, errdefs.ErrInvalidArgument) hold.
func (e *ReferenceError) Unwrap() []error { return []error{e.Err, errdefs.ErrInvalidArgument} }

// PlatformNotFoundError says no available manifest of an image matches the
// wanted platform(s). It wraps errdefs.ErrNotFound.
type PlatformNotFoundError struct {
	Image   string
	Wanted  []ocispec.Platform // empty: the host default was wanted
	Present []ocispec.Platform // platforms whose content is in the store
	Missing []ocispec.Platform // platforms listed by the image whose content is not
}

func (e *PlatformNotFoundError) Error() string {
	wanted := "any platform"
	if len(e.Wanted) > 0 {
		wanted = formatPlatforms(e.Wanted)
	}
	msg := fmt.Sprintf("image %s has no content for %s in the store; present: %s", e.Image, wanted, orNone(formatPlatforms(e.Present)))
	if len(e.Missing) > 0 {
		msg += "; listed but missing: " + formatPlatforms(e.Missing) + " (pull them with `ctrpush pull --platform`)"
	}
	return msg
}

// Unwrap lets errdefs.IsNotFound hold.
func (e *PlatformNotFoundError) Unwrap() error { return errdefs.ErrNotFound }

// PlatformConflictError says several manifests match and ctrpush will not
// guess. It wraps errdefs.ErrConflict.
type PlatformConflictError struct {
	Image   string
	Wanted  []ocispec.Platform
	Matches []ocispec.Platform
}

func (e *PlatformConflictError) Error() string {
	if len(e.Wanted) == 0 {
		return fmt.Sprintf("image %s: only some platforms are in the store (%s) and none matches this host; choose one with --platform or push everything with --all-platforms after pulling the rest", e.Image, formatPlatforms(e.Matches))
	}
	return fmt.Sprintf("image %s: platform %s matches several manifests (%s); give a more specific --platform", e.Image, formatPlatforms(e.Wanted), formatPlatforms(e.Matches))
}

// Unwrap lets errdefs.IsConflict hold.
func (e *PlatformConflictError) Unwrap() error { return errdefs.ErrConflict }

// MissingContentError names blobs an operation needs that the store lacks.
// It wraps errdefs.ErrNotFound.
type MissingContentError struct {
	Image   string
	Missing []ocispec.Descriptor
}

func (e *MissingContentError) Error() string {
	var ds []string
	for i, d := range e.Missing {
		if i == 5 {
			ds = append(ds, fmt.Sprintf("and %d more", len(e.Missing)-5))
			break
		}
		s := d.Digest.String()
		if d.Platform != nil {
			s += " (" + platforms.Format(*d.Platform) + ")"
		}
		ds = append(ds, s)
	}
	return fmt.Sprintf("image %s: %d blob(s) missing from the store: %s; pull the image with `ctrpush pull --all-platforms` or push only what is present with --platform", e.Image, len(e.Missing), strings.Join(ds, ", "))
}

// Unwrap lets errdefs.IsNotFound hold.
func (e *MissingContentError) Unwrap() error { return errdefs.ErrNotFound }

func formatPlatforms(ps []ocispec.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, platforms.Format(p))
	}
	return strings.Join(s, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
