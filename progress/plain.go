package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// PlainInterval is how often Plain prints a byte-count line for a transfer
// whose bytes are flowing.
const PlainInterval = 5 * time.Second

// Plain renders one line per state change, with no carriage returns or
// escape codes: for logs and terminals that are not TTYs. While bytes flow
// it prints a byte count at most every PlainInterval per transfer. Results
// go to out, everything else to w. An event about one of several
// destinations starts with "[host/repo:tag] ".
type Plain struct {
	mu    sync.Mutex
	w     io.Writer
	out   io.Writer
	last  map[string]State
	shown map[string]time.Time
	via   map[string]string
	now   func() time.Time
}

// NewPlain returns a plain renderer writing progress to w and results to out.
func NewPlain(w, out io.Writer) *Plain {
	return &Plain{w: w, out: out, last: map[string]State{}, shown: map[string]time.Time{}, via: map[string]string{}, now: time.Now}
}

// Emit renders e.
func (p *Plain) Emit(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case e.Message != "":
		fmt.Fprintln(p.w, prefix(e)+e.Message)
	case e.Reduced != nil:
		fmt.Fprintln(p.w, prefix(e)+e.Reduced.Text())
	case e.Result != nil:
		fmt.Fprintln(p.out, e.Result.LineFor(e.Destination))
	case e.Transfer != nil:
		t, k, pre := e.Transfer, key(e), prefix(e)
		prev, seen := p.last[k]
		p.last[k] = t.State
		flowing := t.State == Pushing || t.State == Downloading
		via := t.Via != "" && t.Via != p.via[k]
		if via {
			p.via[k] = t.Via
		}
		switch {
		case !seen || prev != t.State || t.State == Retrying || via:
			if flowing {
				how := ""
				if p.via[k] != "" {
					how = " (" + p.via[k] + ")"
				}
				if t.Current > 0 && t.Current < t.Total {
					fmt.Fprintf(p.w, "%s%s: %s %s/%s%s\n", pre, t.ID, t.Status(), HumanSize(t.clamped()), HumanSize(t.Total), how)
				} else {
					fmt.Fprintf(p.w, "%s%s: %s %s%s\n", pre, t.ID, t.Status(), HumanSize(t.Total), how)
				}
				p.shown[k] = p.now()
				return
			}
			fmt.Fprintf(p.w, "%s%s: %s\n", pre, t.ID, t.Status())
		case flowing && p.now().Sub(p.shown[k]) >= PlainInterval:
			fmt.Fprintf(p.w, "%s%s: %s %s/%s\n", pre, t.ID, t.Status(), HumanSize(t.clamped()), HumanSize(t.Total))
			p.shown[k] = p.now()
		}
	}
}

// Fail does nothing: the caller prints the error.
func (p *Plain) Fail(error) {}

// Close does nothing: every line is already out.
func (p *Plain) Close() error { return nil }

// Quiet shows nothing; the caller prints what it needs.
type Quiet struct{}

// Emit drops e.
func (Quiet) Emit(Event) {}

// Fail does nothing.
func (Quiet) Fail(error) {}

// Close does nothing.
func (Quiet) Close() error { return nil }
