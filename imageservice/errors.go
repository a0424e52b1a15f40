package imageservice

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
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
	if e.What != "platform" {
		if hint := referenceHint(e.Value); hint != "" {
			// The parser's own words can mislead ("Bad Name": "must be
			// lowercase"): with a hint, only that the format is wrong.
			parser := fmt.Sprint(e.Err)
			if strings.HasPrefix(parser, reference.ErrReferenceInvalidFormat.Error()) || errors.Is(e.Err, reference.ErrNameContainsUppercase) {
				parser = reference.ErrReferenceInvalidFormat.Error()
			}
			return fmt.Sprintf("invalid %s %q: %s (%s)", e.What, e.Value, hint, parser)
		}
	}
	return fmt.Sprintf("invalid %s %q: %v", e.What, e.Value, e.Err)
}

// Scheme is the URL scheme the reference was given with ("https" of
// "https://host/repo:tag"), "" without one: a front end names its own
// way to speak plain HTTP to a registry given as "http://".
func (e *ReferenceError) Scheme() string {
	if e.What == "platform" {
		return ""
	}
	scheme, _, ok := strings.Cut(e.Value, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/:@ ") {
		return ""
	}
	return scheme
}

// tagRule is the grammar of a tag, in words.
const tagRule = "letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128 characters"

// pathRule is the grammar of a repository path, in words.
const pathRule = "lower-case letters and digits, with '.', '_', '__' or '-' only between them, and '/' between components"

// referenceHint says in a user's words what makes s no image reference
// ([HOST[:PORT]/]PATH[:TAG][@DIGEST]), when it can tell: a URL scheme,
// white space, upper case or another character outside the grammar in the
// path, a bad tag, a bad digest. "" otherwise (the parser's own words
// stand).
func referenceHint(s string) string {
	if scheme, rest, ok := strings.Cut(s, "://"); ok && scheme != "" && !strings.ContainsAny(scheme, "/:@ ") {
		return fmt.Sprintf("a reference has no URL scheme: drop %q and give %q", scheme+"://", rest)
	}
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		where := fmt.Sprintf("character %d", utf8.RuneCountInString(s[:i])+1)
		if strings.TrimSpace(s[i:]) == "" {
			where = "at the end"
		}
		return fmt.Sprintf("it contains %s (%s): an image reference has no white space", spaceName(r), where)
	}
	name, dgst, digested := strings.Cut(s, "@")
	tag, tagged := "", false
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag, tagged = name[:i], name[i+1:], true
	}
	path := name
	if host, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		path = rest
	}
	if path != strings.ToLower(path) {
		return fmt.Sprintf("the repository path %q has upper case letters: repository names are lower case (%q)", path, strings.ToLower(path))
	}
	for _, r := range path {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r)) {
			return fmt.Sprintf("the repository path %q has %q: a repository path has %s", path, r, pathRule)
		}
	}
	if path != "" && !anchoredPath.MatchString(path) {
		return fmt.Sprintf("the repository path %q is not a path: a repository path has %s", path, pathRule)
	}
	if tagged && (len(tag) > 128 || !validTag(tag)) {
		return fmt.Sprintf("the tag %q is not a tag: a tag has %s", tag, tagRule)
	}
	if digested {
		if _, err := digest.Parse(dgst); err != nil {
			return fmt.Sprintf("%q after '@' is no digest: a digest is ALGORITHM:HEX (sha256: and 64 hex digits); a tag follows ':' (app:1.0)", dgst)
		}
	}
	return ""
}

// anchoredPath matches a repository path: components of lower-case
// letters and digits, separated within by '.', '_', '__' or '-'s, and
// from each other by '/' (distribution's grammar).
var anchoredPath = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)

// spaceName names a white-space character for a user.
func spaceName(r rune) string {
	switch r {
	case ' ':
		return "a space"
	case '\t':
		return "a tab"
	case '\n', '\r':
		return "a line break"
	}
	return fmt.Sprintf("white space (%U)", r)
}

func validTag(t string) bool {
	if t == "" || t[0] == '.' || t[0] == '-' {
		return false
	}
	for _, r := range t {
		if !(r == '_' || r == '.' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
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
		msg += "; listed but missing: " + formatPlatforms(e.Missing)
	}
	return msg
}

// Unwrap lets errdefs.IsNotFound hold.
func (e *PlatformNotFoundError) Unwrap() error { return errdefs.ErrNotFound }

// PlatformConflictError says several manifests match and the service will
// not guess which to push. It wraps errdefs.ErrConflict.
type PlatformConflictError struct {
	Image   string
	Wanted  []ocispec.Platform
	Matches []ocispec.Platform
}

func (e *PlatformConflictError) Error() string {
	if len(e.Wanted) == 0 {
		return fmt.Sprintf("image %s: only some platforms are in the store (%s) and none matches this host; request a platform explicitly, or all platforms once the rest is pulled", e.Image, formatPlatforms(e.Matches))
	}
	return fmt.Sprintf("image %s: platform %s matches several manifests (%s); request a more specific platform", e.Image, formatPlatforms(e.Wanted), formatPlatforms(e.Matches))
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
	return fmt.Sprintf("image %s: %d blob(s) missing from the store: %s; pull the whole image, or request only platforms whose content is present", e.Image, len(e.Missing), strings.Join(ds, ", "))
}

// Unwrap lets errdefs.IsNotFound hold.
func (e *MissingContentError) Unwrap() error { return errdefs.ErrNotFound }

// OptionError is an option the caller gave that cannot be used: a value
// out of range, or options that exclude each other. It wraps
// errdefs.ErrInvalidArgument.
type OptionError struct {
	// Option is the option's name in this package: "WithMaxRetries".
	Option string
	// Value is the value given, nil for an option without one.
	Value any
	// Err says what is wrong with the value: "must not be negative".
	Err error
	// Excludes is the option it cannot be given with ("WithPlatforms");
	// Err is then nil.
	Excludes string
}

func (e *OptionError) Error() string {
	if e.Excludes != "" {
		return fmt.Sprintf("option %s excludes %s", e.Option, e.Excludes)
	}
	if e.Value == nil {
		return fmt.Sprintf("option %s: %v", e.Option, e.Err)
	}
	return fmt.Sprintf("option %s(%v): %v", e.Option, e.Value, e.Err)
}

// Unwrap lets errors.Is(err, errdefs.ErrInvalidArgument) hold.
func (e *OptionError) Unwrap() []error {
	if e.Err == nil {
		return []error{errdefs.ErrInvalidArgument}
	}
	return []error{e.Err, errdefs.ErrInvalidArgument}
}

// UnnamedImageError says an archive being imported does not name an image
// well enough to create it. It wraps errdefs.ErrInvalidArgument.
type UnnamedImageError struct {
	// Tag is the org.opencontainers.image.ref.name of an image the archive
	// names only by tag ("1.0"): WithBaseName gives its repository. Empty
	// when the archive names no image at all.
	Tag string
	// Unnamed counts the archive's images without any name (Tag empty).
	Unnamed int
}

func (e *UnnamedImageError) Error() string {
	if e.Tag != "" {
		return fmt.Sprintf("the archive names an image only by the tag %q, without its repository", e.Tag)
	}
	return fmt.Sprintf("the archive names no image (%d image(s) without an %s or %s annotation)", e.Unnamed, images.AnnotationImageName, ocispec.AnnotationRefName)
}

// Unwrap lets errdefs.IsInvalidArgument hold.
func (e *UnnamedImageError) Unwrap() error { return errdefs.ErrInvalidArgument }

// CertificateError says a registry's TLS certificate is not trusted. Err
// is the verification error (x509, tls). Trusting its CA is a hosts.toml
// setting (ca), skipping verification HostsConfig.Insecure: each front end
// says so in its own words.
type CertificateError struct {
	Registry string
	Err      error
}

func (e *CertificateError) Error() string {
	return fmt.Sprintf("the certificate of registry %s is not trusted: %v", e.Registry, e.Err)
}

func (e *CertificateError) Unwrap() error { return e.Err }

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

// PlatformNotLoadedError says that images of an archive provide none of
// the platforms an import was limited to (WithImportPlatforms); nothing
// was imported. It wraps errdefs.ErrNotFound.
type PlatformNotLoadedError struct {
	Images []string // the images' names
	Wanted []ocispec.Platform
}

func (e *PlatformNotLoadedError) Error() string {
	return fmt.Sprintf("%s not imported: the archive has no complete manifest for %s", strings.Join(e.Images, ", "), formatPlatforms(e.Wanted))
}

// Unwrap lets errdefs.IsNotFound hold.
func (e *PlatformNotLoadedError) Unwrap() error { return errdefs.ErrNotFound }
