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
// go to out, everything else to w.
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
		fmt.Fprintln(p.w, e.Message)
	case e.Reduced != nil:
		fmt.Fprintln(p.w, e.Reduced.Text())
	case e.Result != nil:
		fmt.Fprintln(p.out, e.Result.Line())
	case e.Transfer != nil:
		t := e.Transfer
		prev, seen := p.last[t.ID]
		p.last[t.ID] = t.State
		flowing := t.State == Pushing || t.State == Downloading
		via := t.Via != "" && t.Via != p.via[t.ID]
		if via {
			p.via[t.ID] = t.Via
		}
		switch {
		case !seen || prev != t.State || t.State == Retrying || via:
			if flowing {
				how := ""
				if p.via[t.ID] != "" {
					how = " (" + p.via[t.ID] + ")"
				}
				if t.Current > 0 && t.Current < t.Total {
					fmt.Fprintf(p.w, "%s: %s %s/%s%s\n", t.ID, t.Status(), HumanSize(t.clamped()), HumanSize(t.Total), how)
				} else {
					fmt.Fprintf(p.w, "%s: %s %s%s\n", t.ID, t.Status(), HumanSize(t.Total), how)
				}
				p.shown[t.ID] = p.now()
				return
			}
			fmt.Fprintf(p.w, "%s: %s\n", t.ID, t.Status())
		case flowing && p.now().Sub(p.shown[t.ID]) >= PlainInterval:
			fmt.Fprintf(p.w, "%s: %s %s/%s\n", t.ID, t.Status(), HumanSize(t.clamped()), HumanSize(t.Total))
			p.shown[t.ID] = p.now()
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
