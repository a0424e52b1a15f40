// Package progress owns the model of a push's (or pull's) progress — one
// transfer per blob or manifest, moving through states — and the renderers
// that show it: bars on a terminal (TTY), one line per state change (Plain)
// and Docker's JSON message stream (JSON). Transfer code emits Events; it
// never writes to a terminal. This package imports nothing of ctrpush.
package progress

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// State is where one transfer stands.
type State int

// States, in the order a transfer normally moves through them.
const (
	Preparing State = iota
	Waiting
	Pushing
	Exists  // "Layer already exists" (a layer; Status names other kinds)
	Mounted // "Mounted from <repo>"
	Pushed
	Failed
	Downloading // pull: bytes flowing
	Downloaded  // pull: "Pull complete"
	Retrying    // "Retrying in N seconds"
	Skipped     // "Skipped foreign layer": a non-distributable layer is not uploaded
	Verifying   // pull: every byte read, the digest being checked ("Verifying Checksum")
	Compressing // push --compression: the layer is being converted
	Compressed  // push --compression: converted (Converted names the copy)
)

func (s State) String() string {
	switch s {
	case Preparing:
		return "Preparing"
	case Waiting:
		return "Waiting"
	case Pushing:
		return "Pushing"
	case Exists:
		return "Layer already exists"
	case Mounted:
		return "Mounted from"
	case Pushed:
		return "Pushed"
	case Failed:
		return "Failed"
	case Downloading:
		return "Downloading"
	case Downloaded:
		return "Pull complete"
	case Retrying:
		return "Retrying"
	case Skipped:
		return "Skipped foreign layer"
	case Verifying:
		return "Verifying Checksum"
	case Compressing:
		return "Compressing"
	case Compressed:
		return "Compressed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Done reports whether a transfer in state s has ended.
func (s State) Done() bool {
	switch s {
	case Exists, Mounted, Pushed, Failed, Downloaded, Skipped, Compressed:
		return true
	}
	return false
}

// Kind is what a transfer carries.
type Kind string

// Kinds of transfer.
const (
	KindLayer    Kind = "layer"
	KindConfig   Kind = "config"
	KindManifest Kind = "manifest"
	KindIndex    Kind = "index"
)

// Transfer is the state of one blob or manifest.
type Transfer struct {
	ID      string // first 12 hex characters of the digest
	Digest  string
	Kind    Kind
	State   State
	Current int64
	Total   int64
	From    string        // repository mounted from, with State Mounted
	RetryIn time.Duration // with State Retrying
	// Via says how the bytes travel, with State Pushing: "one PUT", "one
	// request", "8 chunks of 8MiB", "resumed at 36MiB". Text renderers
	// show it; Docker's JSON stream has no place for it.
	Via string
	Err error // with State Failed
	// Compression ("zstd", "gzip") and Converted (the digest of the
	// converted copy), with States Compressing and Compressed.
	Compression, Converted string
}

// Status is the text Docker shows for the transfer's state.
func (t *Transfer) Status() string {
	switch t.State {
	case Exists:
		// Docker's words for a layer; the same words naming the kind for
		// what docker push does not list (a config, a manifest, an index).
		switch t.Kind {
		case KindConfig:
			return "Config already exists"
		case KindManifest:
			return "Manifest already exists"
		case KindIndex:
			return "Index already exists"
		}
	case Mounted:
		return "Mounted from " + t.From
	case Compressing:
		return "Compressing (" + t.Compression + ")"
	case Compressed:
		return fmt.Sprintf("Compressed (%s) as %s", t.Compression, ShortID(t.Converted))
	case Retrying:
		// The wait as it is, not rounded up: "Retrying in 1 second" then
		// a retry 0.29 s later reads as a lie.
		switch w := t.RetryIn.Round(10 * time.Millisecond); {
		case w == time.Second:
			return "Retrying in 1 second"
		case w%time.Second == 0:
			return fmt.Sprintf("Retrying in %d seconds", w/time.Second)
		default:
			return fmt.Sprintf("Retrying in %s seconds", strconv.FormatFloat(w.Seconds(), 'f', -1, 64))
		}
	case Failed:
		if t.Err != nil {
			return "Failed: " + t.Err.Error()
		}
	}
	return t.State.String()
}

// clamped returns Current, never above Total.
func (t *Transfer) clamped() int64 {
	if t.Total > 0 && t.Current > t.Total {
		return t.Total
	}
	return t.Current
}

// Result is one pushed (or pulled) reference: the summary line and the
// JSON aux.
type Result struct {
	Repository string // full repository name, "host/path"
	Tag        string
	Digest     string
	Size       int64
}

// Line is the summary line Docker prints: "TAG: digest: sha256:… size: N".
func (r *Result) Line() string {
	return fmt.Sprintf("%s: digest: %s size: %d", r.Tag, r.Digest, r.Size)
}

// LineFor is Line for an event about destination dest (a push to several
// destinations): the destination's reference in place of the tag,
// "host/repo:TAG: digest: sha256:… size: N".
func (r *Result) LineFor(dest string) string {
	if dest == "" {
		return r.Line()
	}
	return fmt.Sprintf("%s: digest: %s size: %d", dest, r.Digest, r.Size)
}

// key is what identifies a transfer among the events of several
// destinations: the digest's short ID, per destination.
func key(e Event) string {
	if e.Destination == "" {
		return e.Transfer.ID
	}
	return e.Destination + " " + e.Transfer.ID
}

// prefix is what a text line about e's destination starts with: "[dest] "
// when the push has several destinations.
func prefix(e Event) string {
	if e.Destination == "" {
		return ""
	}
	return "[" + e.Destination + "] "
}

// Reduction says a push sends something other than the image's own
// target: one manifest instead of its index, or a new index of some of its
// platforms.
type Reduction struct {
	Image     string             // the local image's name
	Original  ocispec.Descriptor // the image's own target
	Pushed    ocispec.Descriptor // what is pushed instead
	NewIndex  bool               // a new index of Platforms; else one manifest
	Platforms []string           // the platforms pushed ("linux/arm64")
	// Missing are platforms the image lists whose content is not in the
	// store (not pushed).
	Missing []string
	// AttestationsLeft counts attestation manifests of the pushed
	// platforms that are not pushed (a single manifest carries none).
	AttestationsLeft int
	// HostPlatform is set when this host's platform is not among those
	// pushed.
	HostPlatform string
	// Reason says why, for people ("Content of app:1 is missing locally
	// (sha256:…)"); empty when the user asked for it.
	Reason string
	// Asked: the platforms pushed were asked for by name. dockerd sends
	// its ManifestPushedInsteadOfIndex aux only when none was (the
	// docker CLI then says not all multi-platform content is present),
	// so the JSON stream carries the text line alone.
	Asked bool
}

// Text is the line people read.
func (r *Reduction) Text() string {
	var b strings.Builder
	if r.Reason != "" {
		b.WriteString(r.Reason + ": ")
	}
	if r.NewIndex {
		fmt.Fprintf(&b, "Pushing a new index of %s: %s (the local image %s is %s)",
			strings.Join(r.Platforms, ", "), r.Pushed.Digest, r.Image, r.Original.Digest)
	} else {
		s := fmt.Sprintf("manifest pushed instead of index (%s): %s instead of %s", strings.Join(r.Platforms, ", "), r.Pushed.Digest, r.Original.Digest)
		if r.Reason == "" {
			s = strings.ToUpper(s[:1]) + s[1:]
		}
		b.WriteString(s)
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "; not in the store, not pushed: %s", strings.Join(r.Missing, ", "))
	}
	switch {
	case r.AttestationsLeft == 1:
		b.WriteString("; its attestation manifest is not pushed")
	case r.AttestationsLeft > 1:
		fmt.Fprintf(&b, "; %d attestation manifests are not pushed", r.AttestationsLeft)
	}
	if r.HostPlatform != "" {
		fmt.Fprintf(&b, "; this host's platform (%s) is not among those pushed", r.HostPlatform)
	}
	return b.String()
}

// ContentMissing says a push failed because content below Root is
// missing from the store.
type ContentMissing struct {
	Root ocispec.Descriptor
}

// Event is one thing to show. Exactly one of its other fields is set.
type Event struct {
	// Destination names the destination ("host/repo:tag") the event is
	// about when a push has several; empty otherwise.
	Destination string
	// Message is a line of text such as
	// "The push refers to repository [host/repo]".
	Message string
	// Transfer is a state change of one transfer.
	Transfer *Transfer
	// Result is a pushed reference.
	Result *Result
	// Reduced: what is pushed is not the image's own target. Text
	// renderers print its words; Docker's JSON stream also carries moby's
	// ManifestPushedInsteadOfIndex aux.
	Reduced *Reduction
	// Missing: the push failed for missing content (moby's ContentMissing
	// aux in the JSON stream; text renderers leave it to the error).
	Missing *ContentMissing
}

// Sink receives events. It must be safe for concurrent use.
type Sink interface {
	Emit(Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Emit calls f.
func (f SinkFunc) Emit(e Event) { f(e) }

// Discard drops every event.
var Discard Sink = SinkFunc(func(Event) {})

// Renderer shows events and, at the end, the outcome.
type Renderer interface {
	Sink
	// Fail reports the error that ended the operation, in the renderer's
	// format (a JSON errorDetail, say); text renderers leave errors to the
	// caller.
	Fail(err error)
	// Close finishes the output (bars completed, results printed).
	Close() error
}

// ShortID is the 12-hex-character id Docker shows for a digest
// ("sha256:0123456789abcdef…" → "0123456789ab").
func ShortID(digest string) string {
	if i := strings.IndexByte(digest, ':'); i >= 0 {
		digest = digest[i+1:]
	}
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// HumanSize formats n bytes as Docker does (decimal units: "1.05MB").
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}
