package imageservice

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Several destinations in one push: the legs of a graph push, where each
// stands, and the error that says so.

// leg is one destination of a graph push: its repository and record, the
// tag its root goes under, and the tag check asked there.
type leg struct {
	dest  *destination
	tag   string
	check *tagCheck
	// index is the leg's place among the push's destinations: uploads
	// take their room at several destinations in this order.
	index int
	// label names the destination on progress events when a push has
	// several ("" otherwise).
	label string
}

// legRun is a leg during one run: a leg that fails stops its own
// transfers, and the other legs go on.
type legRun struct {
	*leg
	ctx    context.Context
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	err    error
	// rootSent: the root was PUT here.
	rootSent bool
}

// fail records the leg's first failure and stops its transfers.
func (r *legRun) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.cancel(err)
}

func (r *legRun) sentRoot() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rootSent
}

func (r *legRun) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// live are the runs that have not failed.
func live(runs []*legRun) []*legRun {
	var out []*legRun
	for _, r := range runs {
		if r.failed() == nil {
			out = append(out, r)
		}
	}
	return out
}

// Outcomes of one destination of a push that are not failures of its own.
var (
	// errHeld: the destination holds every blob and child manifest, but
	// its tag was not moved because another destination failed.
	errHeld = errors.New("complete (every blob and manifest is there), not tagged because another destination failed")
	// errNotReached: the push ended before this destination was done,
	// for another destination's failure.
	errNotReached = errors.New("not complete: the push stopped for another destination's failure")
)

// DestinationsError is a push to several destinations that left some of
// them untagged (or their referrers not pushed): Results says where each
// destination stands, one line each in the message.
type DestinationsError struct {
	Source  string
	Results []PushResult
	// BestEffort: each destination was tagged when complete.
	BestEffort bool
}

func (e *DestinationsError) Error() string {
	var b strings.Builder
	failed, held, moved := 0, 0, 0
	for _, r := range e.Results {
		switch {
		case r.Tagged:
			moved++
		case errors.Is(r.Err, errHeld) || errors.Is(r.Err, errNotReached):
			held++
		default:
			failed++
		}
	}
	fmt.Fprintf(&b, "push %s: %d of %d destinations failed", e.Source, failed, len(e.Results))
	if held > 0 {
		fmt.Fprintf(&b, ", %d held back", held)
	}
	if moved == 0 {
		b.WriteString("; no tag was moved")
	} else {
		fmt.Fprintf(&b, "; %d tag(s) moved", moved)
	}
	for _, r := range e.Results {
		fmt.Fprintf(&b, "\n  %s: ", r.Reference)
		switch {
		case r.Tagged && r.Err != nil:
			fmt.Fprintf(&b, "tagged %s; %v", r.Descriptor.Digest, r.Err)
		case r.Tagged:
			fmt.Fprintf(&b, "tagged %s", r.Descriptor.Digest)
		default:
			fmt.Fprintf(&b, "%v", r.Err)
		}
	}
	return b.String()
}

// Unwrap is every destination's error.
func (e *DestinationsError) Unwrap() []error {
	var out []error
	for _, r := range e.Results {
		if r.Err != nil {
			out = append(out, r.Err)
		}
	}
	return out
}
