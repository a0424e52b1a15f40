package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// TTYRefresh is how often the bars are redrawn (at most 10 times a second).
const TTYRefresh = 100 * time.Millisecond

// TTY draws one line per transfer, in the order they appear, with a bar,
// byte counts in decimal units, rate and time left while bytes flow, and
// the state otherwise. Messages print above the bars; results are held
// and printed to out when Close has left the bars in their final state.
//
// A push to several destinations draws one block per destination: a line
// naming it, then its transfers.
type TTY struct {
	mu      sync.Mutex
	p       *mpb.Progress
	out     io.Writer
	bars    map[string]*ttyBar
	order   []string
	results []string
	closed  bool
	// blocks are the destinations seen, each with its header bar.
	blocks map[string]*ttyBlock
}

// ttyBlock is one destination's block: its place among the blocks and
// its header line.
type ttyBlock struct {
	index, bars int
	header      *mpb.Bar
}

// blockSize spaces the blocks' bar priorities: a destination's bars sort
// after its header and before the next destination's.
const blockSize = 1 << 20

type ttyBar struct {
	bar  *mpb.Bar
	mu   sync.Mutex
	t    Transfer
	done bool // completed or aborted (tracked here: mpb's own flag is not safe to read)
}

func (b *ttyBar) get() Transfer {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.t
}

// NewTTY returns a renderer drawing bars on w (a terminal) and printing
// results to out.
func NewTTY(w, out io.Writer, width int) *TTY {
	if width <= 0 {
		width = 80
	}
	return &TTY{
		p:      mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(TTYRefresh), mpb.WithWidth(width), mpb.WithAutoRefresh()),
		out:    out,
		bars:   map[string]*ttyBar{},
		blocks: map[string]*ttyBlock{},
	}
}

// block is dest's block, its header drawn when it is new.
func (t *TTY) block(dest string) *ttyBlock {
	b, ok := t.blocks[dest]
	if !ok {
		b = &ttyBlock{index: len(t.blocks)}
		b.header = t.p.New(1, mpb.NopStyle(), mpb.BarPriority(b.index*blockSize),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return dest })))
		t.blocks[dest] = b
	}
	return b
}

// Emit renders e.
func (t *TTY) Emit(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	switch {
	case e.Message != "":
		_, _ = t.p.Write([]byte(prefix(e) + e.Message + "\n"))
	case e.Reduced != nil:
		_, _ = t.p.Write([]byte(prefix(e) + e.Reduced.Text() + "\n"))
	case e.Result != nil:
		t.results = append(t.results, e.Result.LineFor(e.Destination))
	case e.Transfer != nil:
		tr, k := *e.Transfer, key(e)
		b, ok := t.bars[k]
		if !ok {
			var opts []mpb.BarOption
			if e.Destination != "" {
				blk := t.block(e.Destination)
				blk.bars++
				opts = append(opts, mpb.BarPriority(blk.index*blockSize+blk.bars))
			}
			b = t.newBar(tr, opts...)
			t.bars[k] = b
			t.order = append(t.order, k)
		}
		b.mu.Lock()
		prev := b.t
		if tr.Total == 0 {
			tr.Total = prev.Total
		}
		b.t = tr
		b.mu.Unlock()
		total := tr.Total
		if total <= 0 {
			total = 1
		}
		switch {
		case b.done:
		case tr.State == Failed:
			b.done = true
			b.bar.Abort(false)
		case tr.State.Done():
			b.done = true
			b.bar.SetTotal(total, false)
			b.bar.SetCurrent(total)
			b.bar.SetTotal(total, true)
		default:
			b.bar.SetTotal(total, false)
			b.bar.SetCurrent(tr.clamped())
		}
	}
}

func (t *TTY) newBar(tr Transfer, opts ...mpb.BarOption) *ttyBar {
	b := &ttyBar{t: tr}
	total := tr.Total
	if total <= 0 {
		total = 1
	}
	showBar := func() bool {
		s := b.get().State
		return s == Pushing || s == Downloading
	}
	filler := mpb.BarStyle().Lbound("[").Rbound("]").Filler("=").Tip(">").Padding(" ")
	b.bar = t.p.New(total, filler, append(opts,
		mpb.BarFillerMiddleware(func(base mpb.BarFiller) mpb.BarFiller {
			return mpb.BarFillerFunc(func(w io.Writer, st decor.Statistics) error {
				if !showBar() {
					return nil
				}
				return base.Fill(w, st)
			})
		}),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			tr := b.get()
			return fmt.Sprintf("%s: %-22s", tr.ID, tr.Status())
		})),
		mpb.AppendDecorators(decor.Any(func(st decor.Statistics) string {
			tr := b.get()
			if tr.State != Pushing && tr.State != Downloading {
				if tr.State.Done() && tr.Total > 0 {
					return HumanSize(tr.Total)
				}
				return ""
			}
			return fmt.Sprintf("%s/%s", HumanSize(tr.clamped()), HumanSize(tr.Total))
		}, decor.WCSyncSpaceR),
			decor.OnCompleteOrOnAbort(decor.AverageSpeed(decor.SizeB1000(0), "% .1f", decor.WCSyncSpace), ""),
			decor.OnCompleteOrOnAbort(decor.AverageETA(decor.ET_STYLE_MMSS, decor.WCSyncSpace), ""),
		))...,
	)
	return b
}

// Fail does nothing: the caller prints the error below the bars.
func (t *TTY) Fail(error) {}

// Close ends unfinished bars where they stand, waits for the final redraw
// and prints the results.
func (t *TTY) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for _, id := range t.order {
		if b := t.bars[id]; !b.done {
			b.done = true
			b.bar.Abort(false)
		}
	}
	for _, blk := range t.blocks {
		blk.header.Abort(false)
	}
	t.mu.Unlock()
	t.p.Wait()
	for _, r := range t.results {
		fmt.Fprintln(t.out, r)
	}
	return nil
}
