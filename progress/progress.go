// Package progress owns the model of a push's (or pull's) progress — one
// transfer per blob or manifest, moving through states — and the renderers
// that show it. Transfer code emits Events; it never writes to a terminal.
// This package imports nothing of ctrpush.
package progress

import (
	"fmt"
	"io"
	"sync"
)

// State is where one transfer stands.
type State int

// States, in the order a transfer normally moves through them.
const (
	Preparing State = iota
	Waiting
	Pushing
	Exists  // "Layer already exists"
	Mounted // "Mounted from <repo>"
	Pushed
	Failed
	Downloading // pull: bytes flowing
	Downloaded  // pull: "Pull complete"
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
	}
	return fmt.Sprintf("State(%d)", int(s))
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
	From    string // repository mounted from, with State Mounted
	Err     error  // with State Failed
}

// Result is one pushed reference: the summary line and the JSON aux.
type Result struct {
	Repository string // full repository name, "host/path"
	Tag        string
	Digest     string
	Size       int64
}

// Event is one thing to show. Exactly one field is set.
type Event struct {
	// Message is a line of text such as
	// "The push refers to repository [host/repo]".
	Message string
	// Transfer is a state change of one transfer.
	Transfer *Transfer
	// Result is a pushed reference.
	Result *Result
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

// ShortID is the 12-hex-character id Docker shows for a digest
// ("sha256:0123456789abcdef…" → "0123456789ab").
func ShortID(digest string) string {
	for i := 0; i < len(digest); i++ {
		if digest[i] == ':' {
			digest = digest[i+1:]
			break
		}
	}
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// Plain renders one line per state change, with no escape codes: for logs
// and terminals that are not TTYs. Progress (byte counts) is not printed
// line by line. Results go to out, everything else to w.
type Plain struct {
	mu  sync.Mutex
	w   io.Writer
	out io.Writer
}

// NewPlain returns a plain renderer writing progress to w and results to out.
func NewPlain(w, out io.Writer) *Plain { return &Plain{w: w, out: out} }

// Emit renders e.
func (p *Plain) Emit(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case e.Message != "":
		fmt.Fprintln(p.w, e.Message)
	case e.Result != nil:
		fmt.Fprintf(p.out, "%s: digest: %s size: %d\n", e.Result.Tag, e.Result.Digest, e.Result.Size)
	case e.Transfer != nil:
		t := e.Transfer
		switch t.State {
		case Pushing:
			if t.Current != 0 {
				return // byte progress is for bars, not lines
			}
			fmt.Fprintf(p.w, "%s: Pushing %s\n", t.ID, HumanSize(t.Total))
		case Mounted:
			fmt.Fprintf(p.w, "%s: Mounted from %s\n", t.ID, t.From)
		case Failed:
			fmt.Fprintf(p.w, "%s: Failed: %v\n", t.ID, t.Err)
		default:
			fmt.Fprintf(p.w, "%s: %s\n", t.ID, t.State)
		}
	}
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
