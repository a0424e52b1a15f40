// Command bench measures ctrpush against the physical limit and its peers
// on this machine, and writes docs/BENCHMARKS.md. `make bench` runs it.
//
// Everything runs on 127.0.0.1: the reference registry (distribution v3,
// filesystem storage in a temporary directory), ctrpush's binary on an
// embedded store, and peers built from the module proxy at pinned versions.
// Scenarios run interleaved (A B C … A B C …) for -runs rounds; the table
// gives the median and the min–max.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/containerd/log"

	"github.com/ctrpush/ctrpush/internal/containerdtest"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// Peers, pinned.
const craneModule = "github.com/google/go-containerregistry/cmd/crane@v0.22.1"

const mib = 1 << 20

type benchImage struct {
	id    string // short name in the table
	spec  testimage.Spec
	img   *testimage.Image
	dir   string // OCI layout
	local string // name in the embedded store
	bytes int64  // total blob bytes
}

type sample struct {
	dur      time.Duration
	requests int
	upBytes  int64
	rssKB    int64
	conns    int64 // connections opened through the delay proxy
}

type row struct {
	image, name string
	samples     []sample
	note        string
}

type bench struct {
	work, bin, root string
	ctrpush, crane  string
	// baseline is ctrpush built from an earlier revision (baselineRev),
	// measured beside the current one; "" when not asked for.
	baseline, baselineRev string
	// rtts are the round trips of the plain-HTTP link tables.
	rtts []time.Duration
	// rows picks the link tables' rows to run (by name).
	rowFilter *regexp.Regexp
	small     *benchImage            // 100x1MiB, once made (smallImage)
	daemon    *containerdtest.Daemon // nil: no daemon rows
	docker    string                 // the docker CLI, with ctrpush serve on the daemon; "" skips its row
	reg       *registrytest.Registry
	runs      int
	rows      []*row
	log       io.Writer
}

func main() {
	runs := flag.Int("runs", 5, "rounds of every scenario (≥5 for the record)")
	big := flag.Bool("big", false, "also measure one 2 GiB layer (slow; for peak RSS)")
	out := flag.String("out", "docs/BENCHMARKS.md", "write the report here ('' to skip)")
	only := flag.String("only", "", "comma-separated image ids to run (default all)")
	wan := flag.Bool("wan", true, "also measure over emulated links of 50 and 100 ms round trips (delay proxy)")
	loopback := flag.Bool("loopback", true, "measure on loopback (the tables, the sweep, uploads that break); -loopback=false with -out '' measures only the links")
	baseline := flag.String("baseline", "", "also measure ctrpush built from this git revision, side by side (regression checks)")
	rtts := flag.String("rtts", "50ms,100ms", "round trips of the plain-HTTP link tables (with -wan); '' for the TLS table alone")
	multi := flag.Bool("multi", true, "also measure one push to two registries against each alone, over 50 ms links (issue 24); with -loopback=false -wan=false -compress=false -out '' only that table")
	compress := flag.Bool("compress", true, "also measure push --compression zstd and gzip of 8 uncompressed 32 MiB layers against compressing alone and pushing the converted image alone, on loopback (issue 25); with -loopback=false -wan=false -multi=false -out '' only that table")
	pull := flag.Bool("pull", true, "also measure cold pulls against the raw parallel GET, crane and the daemon's pull, on loopback and at each round trip of -rtts (issue 27); with -loopback=false -wan=false -multi=false -compress=false -out '' only those tables")
	rows := flag.String("rows", "", "run only the rows of the link, several-destinations and compression tables whose name matches this regular expression (an A/B of two rows; with -out '')")
	flag.Parse()
	if *compressWorkerFlag {
		if err := compressWorker(flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "bench -compress-worker:", err)
			os.Exit(1)
		}
		return
	}
	_ = log.SetLevel("error")
	var linkRTTs []time.Duration
	for _, f := range strings.FieldsFunc(*rtts, func(r rune) bool { return r == ',' }) {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -rtts %q: %v\n", *rtts, err)
			os.Exit(2)
		}
		linkRTTs = append(linkRTTs, d)
	}
	rowFilter, err := regexp.Compile(*rows)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: -rows %q: %v\n", *rows, err)
		os.Exit(2)
	}
	if err := run(*runs, *big, *out, *only, *baseline, *wan, *loopback, *multi, *compress, *pull, linkRTTs, rowFilter); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(runs int, big bool, out, only, baseline string, wan, loopback, multi, compress, pull bool, rtts []time.Duration, rows *regexp.Regexp) error {
	work, err := os.MkdirTemp("", "ctrpush-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{work: work, bin: filepath.Join(work, "bin"), root: filepath.Join(work, "store"), runs: runs, log: os.Stderr, baselineRev: baseline, rtts: rtts, rowFilter: rows}
	if err := b.build(); err != nil {
		return err
	}
	reg, stop, err := registrytest.StartProcess(filepath.Join(work, "registry"))
	if err != nil {
		return err
	}
	defer stop()
	b.reg = reg
	if os.Geteuid() == 0 && (loopback || wan || pull) { // the several-destinations table has no daemon rows
		d, stopDaemon, err := containerdtest.StartProcess()
		if err != nil {
			fmt.Fprintf(b.log, "containerd could not be started, daemon rows skipped: %v\n", err)
		} else {
			defer stopDaemon()
			b.daemon = d
			stopServe, err := b.startServe()
			if err != nil {
				fmt.Fprintf(b.log, "docker CLI through ctrpush serve skipped: %v\n", err)
			} else {
				defer stopServe()
			}
		}
	} else {
		fmt.Fprintln(b.log, "not root: containerd daemon rows skipped")
	}

	imgs := []*benchImage{
		{id: "8x32MiB", spec: testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 8, LayerSize: 32 * mib, Seed: 1}},
		{id: "index 2x4x32MiB", spec: testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 4, LayerSize: 32 * mib, Seed: 2}},
		{id: "200x256KiB", spec: testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 200, LayerSize: 256 << 10, Seed: 3}},
	}
	if big {
		imgs = append(imgs, &benchImage{id: "1x2GiB", spec: testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 1, LayerSize: 2048 * mib, Seed: 4}})
	}
	if only != "" {
		imgs = slices.DeleteFunc(imgs, func(i *benchImage) bool { return !slices.Contains(strings.Split(only, ","), i.id) })
	}
	if !loopback && !wan {
		// The several-destinations and pull tables alone: only the
		// former's image.
		imgs = slices.DeleteFunc(imgs, func(i *benchImage) bool {
			return !multi || i.id != "8x32MiB" // the pull tables make their own
		})
	}
	for i, bi := range imgs {
		if err := b.prepare(bi, i); err != nil {
			return fmt.Errorf("prepare %s: %w", bi.id, err)
		}
	}
	report := ""
	if loopback {
		r, err := b.loopback(imgs)
		if err != nil {
			return err
		}
		report = r
	}
	if wan {
		w, err := b.wan(imgs)
		if err != nil {
			return fmt.Errorf("wan: %w", err)
		}
		report += w
	}
	if multi {
		m, err := b.multi(imgs)
		if err != nil {
			return fmt.Errorf("several destinations: %w", err)
		}
		report += m
	}
	if compress {
		c, err := b.compress()
		if err != nil {
			return fmt.Errorf("compression on push: %w", err)
		}
		report += c
	}
	if pull {
		p, err := b.pullTables(rtts)
		if err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		report += p
	}
	fmt.Print(report)
	if out != "" {
		return writeReport(out, report)
	}
	return nil
}
