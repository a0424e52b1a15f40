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
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/containerdtest"
	"github.com/ctrpush/ctrpush/internal/delayproxy"
	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/mount"
	"github.com/ctrpush/ctrpush/store"
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
	rows := flag.String("rows", "", "run only the link tables' rows whose name matches this regular expression (an A/B of two rows; with -out '')")
	flag.Parse()
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
	if err := run(*runs, *big, *out, *only, *baseline, *wan, *loopback, linkRTTs, rowFilter); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(runs int, big bool, out, only, baseline string, wan, loopback bool, rtts []time.Duration, rows *regexp.Regexp) error {
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
	if os.Geteuid() == 0 {
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
	fmt.Print(report)
	if out != "" {
		return writeReport(out, report)
	}
	return nil
}

// loopback measures every image on loopback, the sweep and the uploads
// that break.
func (b *bench) loopback(imgs []*benchImage) (string, error) {
	for _, bi := range imgs {
		if err := b.measureImage(bi); err != nil {
			return "", fmt.Errorf("%s: %w", bi.id, err)
		}
	}
	var sweepRows []*row
	for _, bi := range imgs {
		if bi.id == "8x32MiB" || bi.id == "200x256KiB" {
			rows, err := b.sweep(bi)
			if err != nil {
				return "", fmt.Errorf("sweep: %w", err)
			}
			sweepRows = append(sweepRows, rows...)
		}
	}
	report := b.report(imgs, sweepRows)
	if slices.ContainsFunc(imgs, func(bi *benchImage) bool { return bi.id == "8x32MiB" || bi.id == "1x2GiB" }) {
		breaks, err := b.breaks(imgs)
		if err != nil {
			return "", fmt.Errorf("uploads that break: %w", err)
		}
		report += breaks
	}
	return report, nil
}

// Markers around the generated part of the report; text outside them
// (notes, profiling) is kept when the report is regenerated.
const (
	beginMarker = "<!-- bench:begin (generated by make bench; edit outside these markers) -->"
	endMarker   = "<!-- bench:end -->"
)

func writeReport(path, report string) error {
	generated := beginMarker + "\n" + report + endMarker + "\n"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	i, j := strings.Index(text, beginMarker), strings.Index(text, endMarker)
	switch {
	case i >= 0 && j > i:
		text = text[:i] + generated + text[j+len(endMarker)+1:]
	default:
		text = "# Benchmarks\n\n" + generated
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// build compiles ctrpush and the pinned peers into the work directory.
func (b *bench) build() error {
	b.ctrpush = filepath.Join(b.bin, "ctrpush")
	cmd := exec.Command("go", "build", "-o", b.ctrpush, "github.com/ctrpush/ctrpush/cmd/ctrpush")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build ctrpush: %v\n%s", err, out)
	}
	if b.baselineRev != "" {
		if err := b.buildBaseline(); err != nil {
			return err
		}
	}
	cmd = exec.Command("go", "install", craneModule)
	cmd.Env = append(os.Environ(), "GOBIN="+b.bin, "GOFLAGS=")
	cmd.Dir = b.work // outside our module: the peer's own go.mod decides
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(b.log, "crane could not be built, skipped: %v\n%s", err, out)
	} else {
		b.crane = filepath.Join(b.bin, "crane")
	}
	return nil
}

// buildBaseline builds ctrpush as it was at b.baselineRev (git archive of
// that revision, built with its own go.mod).
func (b *bench) buildBaseline() error {
	src := filepath.Join(b.work, "baseline-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("sh", "-c", `git archive "$1" | tar -x -C "$2"`, "sh", b.baselineRev, src)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("export revision %s: %v\n%s", b.baselineRev, err, out)
	}
	b.baseline = filepath.Join(b.bin, "ctrpush-baseline")
	cmd = exec.Command("go", "build", "-o", b.baseline, "./cmd/ctrpush")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build ctrpush at %s: %v\n%s", b.baselineRev, err, out)
	}
	return nil
}

func (b *bench) prepare(bi *benchImage, i int) error {
	bi.dir = filepath.Join(b.work, fmt.Sprintf("image%d", i))
	img, err := testimage.NewOnDisk(bi.spec, bi.dir)
	if err != nil {
		return err
	}
	bi.img = img
	bi.local = fmt.Sprintf("bench.local/image%d:1", i)
	if err := img.WriteLayoutIndex(bi.dir, testimage.NameAnnotations(bi.local, "1")); err != nil {
		return err
	}
	for _, d := range b.blobs(bi) {
		bi.bytes += d.Size
	}
	for _, m := range append(img.Manifests, testimage.Manifest{Descriptor: img.Target}) {
		if m.Descriptor.Digest != img.Target.Digest || len(img.Manifests) > 1 {
			bi.bytes += m.Descriptor.Size
		}
	}
	if _, _, err := b.ctrpushRun("import", bi.dir); err != nil {
		return err
	}
	if b.daemon != nil {
		if _, _, err := b.daemonRun("import", bi.dir); err != nil {
			return err
		}
	}
	return nil
}

const daemonNamespace = "bench"

// startServe runs `ctrpush serve` on the daemon's bench namespace and
// points the docker CLI (when installed) at it.
func (b *bench) startServe() (func(), error) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		return nil, fmt.Errorf("no docker CLI")
	}
	sock := filepath.Join(b.work, "serve.sock")
	cmd := exec.Command(b.ctrpush, "--address", b.daemon.Address, "--namespace", daemonNamespace, "serve", "--listen", "unix://"+sock)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
	os.Setenv("DOCKER_HOST", "unix://"+sock)
	os.Setenv("DOCKER_CONFIG", filepath.Join(b.work, "docker-config"))
	for i := 0; ; i++ {
		if _, _, err := b.run(docker, "version"); err == nil {
			break
		} else if i == 100 {
			stop()
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.docker = docker
	return stop, nil
}

// daemonRun runs ctrpush on the containerd daemon.
func (b *bench) daemonRun(args ...string) (string, int64, error) {
	return b.run(b.ctrpush, append([]string{"--address", b.daemon.Address, "--namespace", daemonNamespace}, args...)...)
}

// stripDaemonLabels removes the distribution-source labels from the
// daemon's content, so the next push is cold.
func (b *bench) stripDaemonLabels() error {
	c, err := client.New(b.daemon.Address, client.WithDefaultNamespace(daemonNamespace))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), daemonNamespace)
	return stripSources(ctx, c.ContentStore())
}

// blobs lists the image's configs and layers, each once.
func (b *bench) blobs(bi *benchImage) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	for _, m := range bi.img.Manifests {
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// manifests returns the manifests then the index (if any), with bytes.
func (b *bench) manifests(bi *benchImage) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, m := range bi.img.Manifests {
		out = append(out, m.Descriptor)
	}
	if len(bi.img.Manifests) > 1 || bi.img.Target.Digest != bi.img.Manifests[0].Descriptor.Digest {
		out = append(out, bi.img.Target)
	}
	return out
}

func (b *bench) measureImage(bi *benchImage) error {
	type scenario struct {
		name string
		run  func(round int) (sample, error)
	}
	host := b.reg.Host
	scenarios := []scenario{
		{"raw limit (POST+PUT, 4 at a time)", func(r int) (sample, error) {
			return b.measure(func() error { return b.rawPush(bi, fmt.Sprintf("raw/%s-%d", b.idx(bi), r)) })
		}},
		{"ctrpush cold push", func(r int) (sample, error) {
			if err := b.stripLabels(); err != nil {
				return sample{}, err
			}
			return b.measureCtrpush("push", bi.local, fmt.Sprintf("%s/cold/%s-%d:1", host, b.idx(bi), r))
		}},
		{"ctrpush re-push (unchanged)", func(r int) (sample, error) {
			return b.measureCtrpush("push", bi.local, fmt.Sprintf("%s/cold/%s-%d:1", host, b.idx(bi), r))
		}},
		{"ctrpush push to 2nd repo (mount)", func(r int) (sample, error) {
			return b.measureCtrpush("push", bi.local, fmt.Sprintf("%s/mounted/%s-%d:1", host, b.idx(bi), r))
		}},
		{"bare mount-every-blob loop", func(r int) (sample, error) {
			return b.measure(func() error {
				return b.mountLoop(bi, fmt.Sprintf("cold/%s-%d", b.idx(bi), r), fmt.Sprintf("loop/%s-%d", b.idx(bi), r))
			})
		}},
		// The same registry work with no store at all: two raw pushes at
		// once, the floor for the two rows below.
		{"two raw pushes at once", func(r int) (sample, error) {
			return b.measure(func() error {
				var g errgroup.Group
				for _, side := range []string{"a", "b"} {
					g.Go(func() error { return b.rawPush(bi, fmt.Sprintf("rawpair-%s/%s-%d", side, b.idx(bi), r)) })
				}
				return g.Wait()
			})
		}},
		// Two ctrpush processes on one embedded store at once (CI jobs on
		// one runner): compare with the single rows above.
		{"two cold pushes at once, one store", func(r int) (sample, error) {
			if err := b.stripLabels(); err != nil {
				return sample{}, err
			}
			return b.measure(func() error {
				return b.parallel([]string{"push", bi.local, fmt.Sprintf("%s/pair-a/%s-%d:1", host, b.idx(bi), r)},
					[]string{"push", bi.local, fmt.Sprintf("%s/pair-b/%s-%d:1", host, b.idx(bi), r)})
			})
		}},
		{"two mount pushes at once, one store", func(r int) (sample, error) {
			return b.measure(func() error {
				return b.parallel([]string{"push", bi.local, fmt.Sprintf("%s/pairm-a/%s-%d:1", host, b.idx(bi), r)},
					[]string{"push", bi.local, fmt.Sprintf("%s/pairm-b/%s-%d:1", host, b.idx(bi), r)})
			})
		}},
	}
	if b.baseline != "" {
		scenarios = append(scenarios, scenario{"baseline " + b.baselineRev + " cold push", func(r int) (sample, error) {
			if err := b.stripLabels(); err != nil {
				return sample{}, err
			}
			return b.measureRun(b.baseline, "--root", b.root, "push", bi.local, fmt.Sprintf("%s/base/%s-%d:1", host, b.idx(bi), r))
		}})
	}
	if b.crane != "" {
		scenarios = append(scenarios, scenario{"crane push (cold)", func(r int) (sample, error) {
			args := []string{"push", bi.dir, fmt.Sprintf("%s/crane/%s-%d:1", host, b.idx(bi), r)}
			if len(bi.img.Manifests) > 1 {
				args = []string{"push", "--index", bi.dir, fmt.Sprintf("%s/crane/%s-%d:1", host, b.idx(bi), r)}
			}
			return b.measureRun(b.crane, args...)
		}})
	}
	if b.daemon != nil {
		daemonCold := func(name string, bin string, args func(r int) []string) scenario {
			return scenario{name, func(r int) (sample, error) {
				if err := b.stripDaemonLabels(); err != nil {
					return sample{}, err
				}
				return b.measureRun(bin, args(r)...)
			}}
		}
		ctrArgs := func(local bool) func(r int) []string {
			return func(r int) []string {
				a := []string{"--address", b.daemon.Address, "--namespace", daemonNamespace, "images", "push", "--plain-http"}
				if local {
					a = append(a, "--local")
				}
				suffix := "ctr"
				if local {
					suffix = "ctrlocal"
				}
				return append(a, fmt.Sprintf("%s/%s/%s-%d:1", host, suffix, b.idx(bi), r), bi.local)
			}
		}
		scenarios = append(scenarios,
			daemonCold("ctrpush from a containerd daemon (cold)", b.ctrpush, func(r int) []string {
				return []string{"--address", b.daemon.Address, "--namespace", daemonNamespace, "push", bi.local, fmt.Sprintf("%s/daemon/%s-%d:1", host, b.idx(bi), r)}
			}),
			daemonCold("ctr images push (cold)", b.daemon.CtrPath(), ctrArgs(false)),
			daemonCold("ctr images push --local (cold)", b.daemon.CtrPath(), ctrArgs(true)),
		)
	}
	if b.daemon != nil && b.baseline != "" {
		scenarios = append(scenarios, scenario{"baseline " + b.baselineRev + " from a containerd daemon (cold)", func(r int) (sample, error) {
			if err := b.stripDaemonLabels(); err != nil {
				return sample{}, err
			}
			return b.measureRun(b.baseline, "--address", b.daemon.Address, "--namespace", daemonNamespace, "push", bi.local, fmt.Sprintf("%s/basedaemon/%s-%d:1", host, b.idx(bi), r))
		}})
	}
	if b.daemon != nil && b.docker != "" {
		scenarios = append(scenarios, scenario{"docker push via ctrpush serve (daemon, cold)", func(r int) (sample, error) {
			if err := b.stripDaemonLabels(); err != nil {
				return sample{}, err
			}
			ref := fmt.Sprintf("%s/served/%s-%d:1", host, b.idx(bi), r)
			if _, _, err := b.run(b.docker, "tag", bi.local, ref); err != nil {
				return sample{}, err
			}
			// The CLI's RSS is not ctrpush's: the row shows none.
			return b.measure(func() error { _, _, err := b.run(b.docker, "push", ref); return err })
		}})
	}
	rows := make([]*row, len(scenarios))
	for i, s := range scenarios {
		rows[i] = &row{image: bi.id, name: s.name}
	}
	for r := 0; r < b.runs; r++ {
		for i, s := range scenarios {
			smp, err := s.run(r)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", s.name, r, err)
			}
			rows[i].samples = append(rows[i].samples, smp)
			fmt.Fprintf(b.log, "%-16s %-36s round %d: %6.3fs %4d req %8.1f MiB up\n", bi.id, s.name, r, smp.dur.Seconds(), smp.requests, float64(smp.upBytes)/mib)
		}
	}
	b.rows = append(b.rows, rows...)
	if b.daemon == nil {
		for _, n := range []string{"ctrpush from a containerd daemon", "ctr images push", "ctr images push --local"} {
			b.rows = append(b.rows, &row{image: bi.id, name: n, note: "no containerd daemon: run the bench as root"})
		}
	}
	return nil
}

func (b *bench) sweep(bi *benchImage) ([]*row, error) {
	levels := []int{1, 2, 4, 8}
	rows := make([]*row, len(levels))
	for i, c := range levels {
		rows[i] = &row{image: bi.id, name: fmt.Sprintf("ctrpush cold, --max-concurrent-uploads %d", c)}
	}
	for r := 0; r < b.runs; r++ {
		for i, c := range levels {
			if err := b.stripLabels(); err != nil {
				return nil, err
			}
			smp, err := b.measureCtrpush("push", "--max-concurrent-uploads", fmt.Sprint(c), bi.local, fmt.Sprintf("%s/sweep/%d-%d:1", b.reg.Host, c, r))
			if err != nil {
				return nil, err
			}
			rows[i].samples = append(rows[i].samples, smp)
			fmt.Fprintf(b.log, "sweep c=%d round %d: %.3fs\n", c, r, smp.dur.Seconds())
		}
	}
	return rows, nil
}

func (b *bench) idx(bi *benchImage) string { return strings.TrimPrefix(filepath.Base(bi.dir), "image") }

// measure times fn and reads the registry's request log around it.
func (b *bench) measure(fn func() error) (sample, error) {
	if err := b.resetLog(); err != nil {
		return sample{}, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return sample{}, err
	}
	s := sample{dur: time.Since(start)}
	reqs, err := b.requests()
	if err != nil {
		return s, err
	}
	s.requests = len(reqs)
	for _, r := range reqs {
		if strings.Contains(r.Path, "/blobs/uploads/") && (r.Method == http.MethodPut || r.Method == http.MethodPatch) {
			s.upBytes += r.BodyBytes
		}
	}
	return s, nil
}

// measureRun measures any program, with its peak RSS.
func (b *bench) measureRun(bin string, args ...string) (sample, error) {
	var rss int64
	s, err := b.measure(func() error {
		var err error
		_, rss, err = b.run(bin, args...)
		return err
	})
	s.rssKB = rss
	return s, err
}

func (b *bench) measureCtrpush(args ...string) (sample, error) {
	var rss int64
	s, err := b.measure(func() error {
		var err error
		_, rss, err = b.ctrpushRun(args...)
		return err
	})
	s.rssKB = rss
	return s, err
}

// breaks measures uploads through a fault proxy that drops, cuts or
// refuses them: the bytes ctrpush sends (counted at the proxy) against the
// blob bytes, and the time.
func (b *bench) breaks(imgs []*benchImage) (string, error) {
	var eight, huge *benchImage
	for _, bi := range imgs {
		switch bi.id {
		case "8x32MiB":
			eight = bi
		case "1x2GiB":
			huge = bi
		}
	}
	big := &benchImage{id: "1x64MiB", spec: testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 1, LayerSize: 64 * mib, Seed: 5}}
	if err := b.prepare(big, 90); err != nil {
		return "", err
	}
	proxy, stop := faultproxy.New(b.reg.Host)
	defer stop()
	once := func(match func(*http.Request) bool, f faultproxy.Fault) func() faultproxy.Rule {
		return func() faultproxy.Rule {
			var o sync.Once
			return func(r *http.Request) faultproxy.Fault {
				out := faultproxy.Fault{}
				if match(r) {
					o.Do(func() { out = f })
				}
				return out
			}
		}
	}
	isLayerPut := func(r *http.Request) bool { // the 64 MiB layer's, not the config's
		return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && r.ContentLength > 32*mib
	}
	type breakScenario struct {
		name string
		bi   *benchImage
		args []string
		rule func() faultproxy.Rule
	}
	scens := []breakScenario{
		{"64 MiB layer, 8 MiB chunks, connection dropped once at 36 MiB", big, []string{"--chunk-size", "8MiB"},
			once(func(r *http.Request) bool {
				return r.Method == http.MethodPatch && strings.HasPrefix(r.Header.Get("Content-Range"), "33554432-")
			}, faultproxy.Fault{ResetAfter: 4 * mib})},
		{"64 MiB layer, one PUT, cut once at 32 MiB (the registry sees the client go)", big, nil,
			once(isLayerPut, faultproxy.Fault{CutAfter: 32 * mib})},
		{"64 MiB layer, one PUT, connection dropped once at 32 MiB", big, nil,
			once(isLayerPut, faultproxy.Fault{ResetAfter: 32 * mib})},
		{"8x32MiB through a 5 MiB body limit (413 above)", eight, nil, func() faultproxy.Rule {
			return func(r *http.Request) faultproxy.Fault {
				if (r.Method == http.MethodPut || r.Method == http.MethodPatch) && r.ContentLength > 5*mib {
					return faultproxy.Fault{Status: http.StatusRequestEntityTooLarge, Code: "SIZE_INVALID", Early: true}
				}
				return faultproxy.Fault{}
			}
		}},
		{"8x32MiB through the proxy, no limit", eight, nil, func() faultproxy.Rule { return nil }},
	}
	if eight == nil {
		scens = slices.DeleteFunc(scens, func(sc breakScenario) bool {
			return sc.bi == nil
		})
	}
	if huge != nil {
		// 90% of the layer: in the 29th 64 MiB chunk, or 90% of one PUT.
		at := huge.bytes * 9 / 10
		chunk := int64(64 * mib)
		start := at / chunk * chunk
		scens = append(scens, breakScenario{"2 GiB layer, 64 MiB chunks, connection dropped once at 90%", huge, []string{"--chunk-size", "64MiB"},
			once(func(r *http.Request) bool {
				return r.Method == http.MethodPatch && strings.HasPrefix(r.Header.Get("Content-Range"), fmt.Sprintf("%d-", start))
			}, faultproxy.Fault{ResetAfter: at - start})}, breakScenario{"2 GiB layer, one PUT, cut once at 90% (the registry sees the client go)", huge, nil,
			once(func(r *http.Request) bool {
				return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && r.ContentLength > 1<<30
			}, faultproxy.Fault{CutAfter: at})})
	}
	type result struct {
		durs []time.Duration
		sent []int64
	}
	res := make([]result, len(scens))
	for r := 0; r < b.runs; r++ {
		for i, sc := range scens {
			if err := b.stripLabels(); err != nil {
				return "", err
			}
			proxy.SetRule(sc.rule())
			before := proxy.BodyBytes()
			args := append(append([]string{"push"}, sc.args...), sc.bi.local, fmt.Sprintf("%s/brk%d/%s-%d:1", proxy.Host, i, b.idx(sc.bi), r))
			smp, err := b.measureCtrpush(args...)
			if err != nil {
				return "", fmt.Errorf("%s: %w", sc.name, err)
			}
			res[i].durs = append(res[i].durs, smp.dur)
			res[i].sent = append(res[i].sent, proxy.BodyBytes()-before)
			fmt.Fprintf(b.log, "%-70s round %d: %6.3fs %8.1f MiB sent\n", sc.name, r, smp.dur.Seconds(), float64(proxy.BodyBytes()-before)/mib)
		}
	}
	var w strings.Builder
	w.WriteString("## Uploads that break (through a fault proxy)\n\n")
	w.WriteString("Bytes sent are the request body bytes ctrpush sent, counted at the proxy; blob bytes are the image's configs and layers.\n\n")
	w.WriteString("| scenario | median s | min–max s | MiB sent (median) | MiB of blobs |\n|---|---|---|---|---|\n")
	for i, sc := range scens {
		d := res[i].durs
		sent := slices.Clone(res[i].sent)
		slices.Sort(sent)
		fmt.Fprintf(&w, "| %s | %.3f | %.3f–%.3f | %.1f | %.1f |\n", sc.name, median(d).Seconds(), slices.Min(d).Seconds(), slices.Max(d).Seconds(),
			float64(sent[len(sent)/2])/mib, float64(sc.bi.bytes)/mib)
	}
	w.WriteString("\n")
	return w.String(), nil
}

// wan measures pushes through a delay proxy standing for a real link: a
// one-way delay, a 4 MiB window per connection. Rows: ctrpush as it is,
// the raw pusher at several concurrencies (the floor), crane, ctr.
func (b *bench) wan(imgs []*benchImage) (string, error) {
	small := &benchImage{id: "100x1MiB", spec: testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 100, LayerSize: 1 * mib, Seed: 6}}
	if err := b.prepare(small, 91); err != nil {
		return "", err
	}
	list := []*benchImage{small}
	for _, bi := range imgs {
		if bi.id == "8x32MiB" || bi.id == "index 2x4x32MiB" {
			list = append(list, bi)
		}
	}
	var w strings.Builder
	w.WriteString("## Over a link (delay proxy: one-way delay, a 4 MiB window per connection)\n\n")
	w.WriteString("Cold pushes to a new repository through `internal/delayproxy` in front of the registry; median (min–max) of the rounds, interleaved; \"× floor\" is over the raw pusher's best concurrency in the same run.\n\n")
	for _, rtt := range b.rtts {
		proxy, err := delayproxy.Start(b.reg.Host, delayproxy.Config{Delay: rtt / 2, Window: 4 << 20})
		if err != nil {
			return "", err
		}
		for _, bi := range list {
			repo := func(kind string, r int) string {
				return fmt.Sprintf("wan%d-%s/%s-%d", rtt.Milliseconds(), kind, b.idx(bi), r)
			}
			scens := []scen{{"ctrpush", func(r int) (sample, error) {
				if err := b.stripLabels(); err != nil {
					return sample{}, err
				}
				return b.measureCtrpush("push", bi.local, proxy.Addr+"/"+repo("ctrpush", r)+":1")
			}}, {"ctrpush push to 2nd repo (mount)", func(r int) (sample, error) {
				// Mounts from the repository the row above pushed to.
				return b.measureCtrpush("push", bi.local, proxy.Addr+"/"+repo("mounted", r)+":1")
			}}, {fmt.Sprintf("bare mount loop, %d in flight", imageservice.DefaultMaxConcurrentUploads), func(r int) (sample, error) {
				return b.measure(func() error {
					return b.mountLoopTo(bi, proxy.Addr, repo("ctrpush", r), repo("loop", r), imageservice.DefaultMaxConcurrentUploads)
				})
			}}}
			// Labels naming a repository of the registry that lacks the
			// blobs (deleted, or a registry that does not mount): every
			// mount is answered 202 with an upload session.
			scens = append(scens, scen{"ctrpush, every mount answered 202 (stale labels)", func(r int) (sample, error) {
				if err := b.staleLabels(proxy.Addr, repo("gone", r)); err != nil {
					return sample{}, err
				}
				return b.measureCtrpush("push", bi.local, proxy.Addr+"/"+repo("stale", r)+":1")
			}})
			// A re-push of an image its tag names already, from a store
			// whose labels name another repository of the registry (the
			// one the mount row pushed to): nothing to send but the check.
			scens = append(scens, scen{"ctrpush re-push, unchanged (labels name another repository)", func(r int) (sample, error) {
				if err := b.staleLabels(proxy.Addr, repo("mounted", r)); err != nil {
					return sample{}, err
				}
				return b.measureCtrpush("push", bi.local, proxy.Addr+"/"+repo("ctrpush", r)+":1")
			}})
			if b.baseline != "" {
				scens = append(scens, scen{"ctrpush at " + b.baselineRev, func(r int) (sample, error) {
					if err := b.stripLabels(); err != nil {
						return sample{}, err
					}
					return b.measureRun(b.baseline, "--root", b.root, "push", bi.local, proxy.Addr+"/"+repo("base", r)+":1")
				}}, scen{"ctrpush at " + b.baselineRev + " push to 2nd repo (mount)", func(r int) (sample, error) {
					// Mounts from the repository the row above pushed to.
					return b.measureRun(b.baseline, "--root", b.root, "push", bi.local, proxy.Addr+"/"+repo("basemounted", r)+":1")
				}}, scen{"ctrpush at " + b.baselineRev + " re-push, unchanged (labels name another repository)", func(r int) (sample, error) {
					if err := b.staleLabels(proxy.Addr, repo("basemounted", r)); err != nil {
						return sample{}, err
					}
					return b.measureRun(b.baseline, "--root", b.root, "push", bi.local, proxy.Addr+"/"+repo("base", r)+":1")
				}}, scen{"ctrpush at " + b.baselineRev + ", every mount answered 202 (stale labels)", func(r int) (sample, error) {
					if err := b.staleLabels(proxy.Addr, repo("gone", r)); err != nil {
						return sample{}, err
					}
					return b.measureRun(b.baseline, "--root", b.root, "push", bi.local, proxy.Addr+"/"+repo("basestale", r)+":1")
				}})
			}
			for _, n := range []int{4, 8, 16, 32, 64} {
				scens = append(scens, scen{fmt.Sprintf("raw pusher, %d in flight", n), func(r int) (sample, error) {
					return b.measure(func() error { return b.rawPushTo(bi, proxy.Addr, repo(fmt.Sprintf("raw%d", n), r), n) })
				}})
			}
			scens = append(scens, scen{"raw pusher, 64 in flight, connections kept from its last round", func(r int) (sample, error) {
				return b.measure(func() error { return b.rawPushWarm(plain, bi, proxy.Addr, repo("warm", r), 64) })
			}})
			if b.crane != "" {
				scens = append(scens, scen{"crane", func(r int) (sample, error) {
					args := []string{"push", bi.dir, proxy.Addr + "/" + repo("crane", r) + ":1"}
					if len(bi.img.Manifests) > 1 {
						args = []string{"push", "--index", bi.dir, proxy.Addr + "/" + repo("crane", r) + ":1"}
					}
					return b.measureRun(b.crane, args...)
				}})
			}
			if b.daemon != nil {
				if _, _, err := b.daemonRun("import", bi.dir); err != nil {
					return "", err
				}
				scens = append(scens, scen{"ctr images push (daemon)", func(r int) (sample, error) {
					if err := b.stripDaemonLabels(); err != nil {
						return sample{}, err
					}
					return b.measureRun(b.daemon.CtrPath(), "--address", b.daemon.Address, "--namespace", daemonNamespace, "images", "push", "--plain-http", proxy.Addr+"/"+repo("ctr", r)+":1", bi.local)
				}})
			}
			rows, err := b.linkRounds(fmt.Sprintf("wan %s", rtt), proxy, bi, scens)
			if err != nil {
				return "", err
			}
			floor := time.Duration(0)
			for _, r := range rows {
				if strings.HasPrefix(r.name, "raw pusher") && !strings.Contains(r.name, "kept") {
					if m := median(r.durations()); floor == 0 || m < floor {
						floor = m
					}
				}
			}
			fmt.Fprintf(&w, "### %s round trip, %s (%.1f MiB of blobs)\n\n| scenario | median s | min–max s | × floor | requests | connections |\n|---|---|---|---|---|---|\n", rtt, bi.id, float64(bi.bytes)/mib)
			for _, r := range rows {
				d := r.durations()
				mid := r.samples[len(r.samples)/2]
				fmt.Fprintf(&w, "| %s | %.3f | %.3f–%.3f | %.2f | %d | %d |\n", r.name, median(d).Seconds(), slices.Min(d).Seconds(), slices.Max(d).Seconds(),
					float64(median(d))/float64(floor), mid.requests, mid.conns)
			}
			if m, loop := findRow(rows, "ctrpush push to 2nd repo"), findRow(rows, "bare mount loop"); m != nil && loop != nil {
				fmt.Fprintf(&w, "\nMount push ÷ bare mount loop at the same concurrency: %.2f (ctrpush's time includes its process start and the tag checks).\n",
					float64(median(m.durations()))/float64(median(loop.durations())))
			}
			w.WriteString("\n")
		}
		_ = proxy.Close()
	}
	var tlsList []*benchImage
	for _, bi := range list {
		if bi.id != "index 2x4x32MiB" {
			tlsList = append(tlsList, bi)
		}
	}
	t, err := b.overTLS(tlsList)
	if err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	w.WriteString(t)
	return w.String(), nil
}

func findRow(rows []*row, prefix string) *row {
	for _, r := range rows {
		if strings.HasPrefix(r.name, prefix) {
			return r
		}
	}
	return nil
}

// parallel runs ctrpush with each argument list at once on the bench
// store and waits for all of them.
func (b *bench) parallel(argLists ...[]string) error {
	var g errgroup.Group
	for _, args := range argLists {
		g.Go(func() error {
			_, _, err := b.ctrpushRun(args...)
			return err
		})
	}
	return g.Wait()
}

// ctrpushRun runs the binary on the bench store; it returns stdout and the
// peak RSS in KiB.
func (b *bench) ctrpushRun(args ...string) (string, int64, error) {
	return b.run(b.ctrpush, append([]string{"--root", b.root}, args...)...)
}

// run runs a program; it returns stdout and the peak RSS in KiB. The peak
// is the child's own high-water mark (VmHWM), read from /proc while it
// runs: rusage's maxrss of a child started by Go also counts the parent's
// memory at the moment of the fork.
func (b *bench) run(bin string, args ...string) (string, int64, error) {
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	var peak int64
	done := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if v := vmHWM(status); v > peak {
				peak = v
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	<-polled
	if err != nil {
		return "", 0, fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), peak, nil
}

// vmHWM reads the peak resident set (KiB) from a /proc/PID/status file.
func vmHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}

// stripLabels removes every distribution-source label from the bench
// store, so a "cold" push really uploads instead of mounting.
func (b *bench) stripLabels() error {
	ctx := namespaces.WithNamespace(context.Background(), imageservice.DefaultNamespace)
	st, err := store.OpenEmbedded(ctx, b.root)
	if err != nil {
		return err
	}
	defer st.Close()
	return stripSources(ctx, st.ContentStore())
}

// staleLabels makes the labels of everything in the store name only
// repository path of registry (one that lacks it all, for the stale-label
// rows; one that holds it, for the unchanged re-push rows).
func (b *bench) staleLabels(registry, path string) error {
	ctx := namespaces.WithNamespace(context.Background(), imageservice.DefaultNamespace)
	st, err := store.OpenEmbedded(ctx, b.root)
	if err != nil {
		return err
	}
	defer st.Close()
	cs := st.ContentStore()
	if err := stripSources(ctx, cs); err != nil {
		return err
	}
	var ds []digest.Digest
	if err := cs.Walk(ctx, func(i content.Info) error { ds = append(ds, i.Digest); return nil }); err != nil {
		return err
	}
	_, err = mount.WriteBack(ctx, cs, ds, registry, path, 1)
	return err
}

func stripSources(ctx context.Context, cs content.Store) error {
	var infos []content.Info
	if err := cs.Walk(ctx, func(i content.Info) error { infos = append(infos, i); return nil }); err != nil {
		return err
	}
	for _, info := range infos {
		var paths []string
		for k := range mount.SourceLabels(info.Labels) {
			paths = append(paths, "labels."+k)
		}
		if paths == nil {
			continue
		}
		if _, err := cs.Update(ctx, content.Info{Digest: info.Digest}, paths...); err != nil {
			return err
		}
	}
	return nil
}

// --- the registry, spoken to directly ---

type request struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Status    int    `json:"status"`
	BodyBytes int64  `json:"bodyBytes"`
}

func (b *bench) resetLog() error {
	req, _ := http.NewRequest(http.MethodDelete, "http://"+b.reg.Host+"/_requests", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func (b *bench) requests() ([]request, error) {
	resp, err := http.Get("http://" + b.reg.Host + "/_requests")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []request
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// rawClient is the HTTP client the raw pusher and the bare mount loop use,
// and the scheme it speaks.
type rawClient struct {
	c      *http.Client
	scheme string
}

// plain is the raw pusher over plain HTTP/1.1, as ctrpush talks to the
// bench's registry.
var plain = &rawClient{c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, scheme: "http"}

func (rc *rawClient) do(method, u string, body io.Reader, size int64, contentType string, want int) (*http.Response, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := rc.c.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return resp, fmt.Errorf("%s %s: %s", method, u, resp.Status)
	}
	return resp, nil
}

// rawPush is the physical limit: per blob one POST and one PUT with the
// file as body (sendfile), 4 at a time, then the manifests; no checks.
func (b *bench) rawPush(bi *benchImage, repo string) error {
	return b.rawPushTo(bi, b.reg.Host, repo, 4)
}

// rawPushTo is the raw pusher to host with n uploads in flight. It starts
// without connections, as every push tool's process does.
func (b *bench) rawPushTo(bi *benchImage, host, repo string, n int) error {
	return b.rawPushWith(plain, bi, host, repo, n)
}

// rawPushWith is the raw pusher through rc, starting without connections.
func (b *bench) rawPushWith(rc *rawClient, bi *benchImage, host, repo string, n int) error {
	rc.c.CloseIdleConnections()
	return b.rawPushWarm(rc, bi, host, repo, n)
}

// rawPushWarm is the raw pusher on the connections its client kept from
// its last round (no set-up cost: a floor no new process can reach).
func (b *bench) rawPushWarm(rc *rawClient, bi *benchImage, host, repo string, n int) error {
	base := rc.scheme + "://" + host + "/v2/" + repo
	var g errgroup.Group
	g.SetLimit(n)
	for _, d := range b.blobs(bi) {
		g.Go(func() error {
			resp, err := rc.do(http.MethodPost, base+"/blobs/uploads/", nil, 0, "", http.StatusAccepted)
			if err != nil {
				return err
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil {
				return err
			}
			if !loc.IsAbs() {
				loc.Scheme, loc.Host = rc.scheme, host
			}
			q := loc.Query()
			q.Set("digest", d.Digest.String())
			loc.RawQuery = q.Encode()
			f, err := os.Open(filepath.Join(bi.dir, "blobs", "sha256", d.Digest.Encoded()))
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = rc.do(http.MethodPut, loc.String(), f, d.Size, "application/octet-stream", http.StatusCreated)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return b.putManifests(rc, bi, base)
}

func (b *bench) putManifests(rc *rawClient, bi *benchImage, base string) error {
	ms := b.manifests(bi)
	for i, m := range ms {
		ref := m.Digest.String()
		if i == len(ms)-1 {
			ref = "1"
		}
		data := bi.img.Blobs[m.Digest]
		if _, err := rc.do(http.MethodPut, base+"/manifests/"+ref, bytes.NewReader(data), int64(len(data)), m.MediaType, http.StatusCreated); err != nil {
			return err
		}
	}
	return nil
}

// mountLoop mounts every blob from one repository into another, 4 at a
// time, then puts the manifests: the least a mount push can do.
func (b *bench) mountLoop(bi *benchImage, from, to string) error {
	return b.mountLoopTo(bi, b.reg.Host, from, to, 4)
}

// mountLoopTo is the mount loop to host with n mounts in flight, starting
// without connections.
func (b *bench) mountLoopTo(bi *benchImage, host, from, to string, n int) error {
	plain.c.CloseIdleConnections()
	base := "http://" + host + "/v2/" + to
	var g errgroup.Group
	g.SetLimit(n)
	for _, d := range b.blobs(bi) {
		g.Go(func() error {
			_, err := plain.do(http.MethodPost, base+"/blobs/uploads/?"+url.Values{"mount": {d.Digest.String()}, "from": {from}}.Encode(), nil, 0, "", http.StatusCreated)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return b.putManifests(plain, bi, base)
}

// --- the report ---

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *row) durations() []time.Duration {
	var out []time.Duration
	for _, s := range r.samples {
		out = append(out, s.dur)
	}
	return out
}

func (r *row) medianOf(f func(sample) int64) int64 {
	var v []int64
	for _, s := range r.samples {
		v = append(v, f(s))
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func (b *bench) report(imgs []*benchImage, sweep []*row) string {
	var w strings.Builder
	fmt.Fprintf(&w, "Produced by `make bench` (`go run ./bench %s`) on %s.\n\n", strings.Join(os.Args[1:], " "), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&w, "Machine: %d cores, %s/%s, %s. Registry: distribution v3 (filesystem storage, loopback, its own process). ", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(&w, "Peers: crane from `%s`.\n\n", craneModule)
	fmt.Fprintf(&w, "Every scenario runs interleaved with the others in each of %d rounds; times are the median (min–max). ", b.runs)
	w.WriteString("\"× raw\" is the median time over the raw limit's (lower is better); requests and bytes are read from the registry's own request log; peak RSS is the pushing process's own (ctrpush, ctr or crane; the daemon's memory is not counted), read from /proc while it runs.\n\n")
	byImage := map[string]*benchImage{}
	for _, bi := range imgs {
		byImage[bi.id] = bi
	}
	for _, bi := range imgs {
		fmt.Fprintf(&w, "## %s (%.1f MiB of blobs)\n\n", bi.id, float64(bi.bytes)/mib)
		w.WriteString("| scenario | median s | min–max s | MiB/s | × raw | requests | MiB uploaded | peak RSS MiB |\n|---|---|---|---|---|---|---|---|\n")
		var raw time.Duration
		for _, r := range b.rows {
			if r.image == bi.id && strings.HasPrefix(r.name, "raw limit") {
				raw = median(r.durations())
			}
		}
		for _, r := range b.rows {
			if r.image != bi.id {
				continue
			}
			b.writeRow(&w, r, bi, raw)
		}
		w.WriteString("\n")
	}
	w.WriteString(b.goals(imgs))
	for _, id := range []string{"8x32MiB", "200x256KiB"} {
		var rows []*row
		for _, r := range sweep {
			if r.image == id {
				rows = append(rows, r)
			}
		}
		if rows == nil {
			continue
		}
		fmt.Fprintf(&w, "## Upload concurrency sweep (%s, cold push)\n\n| scenario | median s | min–max s | MiB/s | × raw | requests | MiB uploaded | peak RSS MiB |\n|---|---|---|---|---|---|---|---|\n", id)
		var raw time.Duration
		if r := b.find(id, "raw limit"); r != nil {
			raw = median(r.durations())
		}
		for _, r := range rows {
			b.writeRow(&w, r, byImage[id], raw)
		}
		w.WriteString("\n")
	}
	return w.String()
}

func (b *bench) writeRow(w io.Writer, r *row, bi *benchImage, raw time.Duration) {
	if len(r.samples) == 0 {
		fmt.Fprintf(w, "| %s | – | – | – | – | – | – | – |\n", r.name+" ("+r.note+")")
		return
	}
	ds := r.durations()
	med := median(ds)
	rss := "–"
	if v := r.medianOf(func(s sample) int64 { return s.rssKB }); v > 0 {
		rss = fmt.Sprintf("%.0f", float64(v)/1024)
	}
	ratio := "–"
	if raw > 0 {
		ratio = fmt.Sprintf("%.2f", med.Seconds()/raw.Seconds())
	}
	fmt.Fprintf(w, "| %s | %.3f | %.3f–%.3f | %.0f | %s | %d | %.1f | %s |\n", r.name, med.Seconds(), slices.Min(ds).Seconds(), slices.Max(ds).Seconds(),
		float64(bi.bytes)/mib/med.Seconds(), ratio, r.medianOf(func(s sample) int64 { return int64(s.requests) }),
		float64(r.medianOf(func(s sample) int64 { return s.upBytes }))/mib, rss)
}

// find returns the row of image id whose name starts with prefix.
func (b *bench) find(id, prefix string) *row {
	for _, r := range b.rows {
		if r.image == id && strings.HasPrefix(r.name, prefix) && len(r.samples) > 0 {
			return r
		}
	}
	return nil
}

// goals checks each goal of the benchmark issue against the medians.
func (b *bench) goals(imgs []*benchImage) string {
	var w strings.Builder
	w.WriteString("## Goals\n\n| goal | measured | result |\n|---|---|---|\n")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	med := func(r *row) float64 { return median(r.durations()).Seconds() }
	for _, bi := range imgs {
		raw, cold, crane := b.find(bi.id, "raw limit"), b.find(bi.id, "ctrpush cold"), b.find(bi.id, "crane push")
		if raw == nil || cold == nil {
			continue
		}
		tp := med(raw) / med(cold)
		fmt.Fprintf(&w, "| %s: cold push ≥ 0.95 × raw throughput | %.2f × | %s |\n", bi.id, tp, verdict(tp >= 0.95))
		if crane != nil {
			fmt.Fprintf(&w, "| %s: cold push ahead of crane | %.3f s vs %.3f s | %s |\n", bi.id, med(cold), med(crane), verdict(med(cold) < med(crane)))
		}
		if re := b.find(bi.id, "ctrpush re-push"); re != nil {
			n := re.medianOf(func(s sample) int64 { return int64(s.requests) })
			fmt.Fprintf(&w, "| %s: re-push in ≤ 2 requests | %d | %s |\n", bi.id, n, verdict(n <= 2))
		}
		if m, loop := b.find(bi.id, "ctrpush push to 2nd repo"), b.find(bi.id, "bare mount"); m != nil && loop != nil {
			up := m.medianOf(func(s sample) int64 { return s.upBytes })
			ratio := med(m) / med(loop)
			fmt.Fprintf(&w, "| %s: 2nd repository: zero blob bytes, ≤ 1.5 × the bare mount loop | %d bytes, %.1f × (%.3f s vs %.3f s; ctrpush's time includes its process start) | %s |\n",
				bi.id, up, ratio, med(m), med(loop), verdict(up == 0 && ratio <= 1.5))
		}
		if bi.id == "1x2GiB" {
			rss := float64(cold.medianOf(func(s sample) int64 { return s.rssKB })) / 1024
			fmt.Fprintf(&w, "| 1x2GiB: peak RSS ≤ 64 MiB | %.0f MiB | %s |\n", rss, verdict(rss <= 64))
		}
	}
	var many, eight *benchImage
	for _, bi := range imgs {
		switch bi.id {
		case "200x256KiB":
			many = bi
		case "8x32MiB":
			eight = bi
		}
	}
	if many != nil && eight != nil {
		m, e := b.find(many.id, "ctrpush cold"), b.find(eight.id, "ctrpush cold")
		rm, re := b.find(many.id, "raw limit"), b.find(eight.id, "raw limit")
		if m != nil && e != nil && rm != nil && re != nil {
			perM := med(m) / (float64(many.bytes) / mib)
			perE := med(e) / (float64(eight.bytes) / mib)
			rawRatio := (med(rm) / (float64(many.bytes) / mib)) / (med(re) / (float64(eight.bytes) / mib))
			fmt.Fprintf(&w, "| 200 layers: time per MiB ≤ 1.5 × the 8-layer image's | %.1f × (%.1f ms/MiB vs %.1f ms/MiB; the raw limit itself: %.1f ×) | %s |\n",
				perM/perE, perM*1000, perE*1000, rawRatio, verdict(perM/perE <= 1.5))
		}
	}
	w.WriteString("\n")
	return w.String()
}

// overTLS measures what HTTP/2 would change at a 50 ms round trip: a
// second registry serving TLS and offering HTTP/2 (as distribution's own
// TLS server does) behind the delay proxy; the raw pusher over HTTP/1.1
// (a connection per upload in flight) and over HTTP/2 (every request on
// one connection), and ctrpush (HTTP/1.1; the registry's CA from a
// hosts.toml).
func (b *bench) overTLS(list []*benchImage) (string, error) {
	dir := filepath.Join(b.work, "tls")
	pair, err := registrytest.Issue("127.0.0.1", nil, true, false)
	if err != nil {
		return "", err
	}
	certPEM, keyPEM := pair.PEM, pair.KeyPEM
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		return "", err
	}
	reg, stop, err := registrytest.StartProcess(filepath.Join(b.work, "registry-tls"), "-tls-cert", cert, "-tls-key", key)
	if err != nil {
		return "", err
	}
	defer stop()
	rtt := 50 * time.Millisecond
	proxy, err := delayproxy.Start(reg.Host, delayproxy.Config{Delay: rtt / 2, Window: 4 << 20})
	if err != nil {
		return "", err
	}
	defer proxy.Close()
	hostsDir := filepath.Join(dir, "certs.d")
	if err := os.MkdirAll(filepath.Join(hostsDir, proxy.Addr), 0o755); err != nil {
		return "", err
	}
	toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  ca = %q\n", "https://"+proxy.Addr, "https://"+proxy.Addr, cert)
	if err := os.WriteFile(filepath.Join(hostsDir, proxy.Addr, "hosts.toml"), []byte(toml), 0o644); err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	h1 := &rawClient{c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: &tls.Config{RootCAs: pool}}}, scheme: "https"}
	h2 := &rawClient{c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}, scheme: "https"}
	// Each client really speaks what its row says, or the rows mean nothing.
	for want, rc := range map[int]*rawClient{1: h1, 2: h2} {
		resp, err := rc.c.Get("https://" + proxy.Addr + "/v2/")
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.ProtoMajor != want {
			return "", fmt.Errorf("the TLS registry answered HTTP/%d where HTTP/%d was asked for", resp.ProtoMajor, want)
		}
	}
	timed := func(fn func() error) (sample, error) {
		start := time.Now()
		err := fn()
		return sample{dur: time.Since(start)}, err
	}
	var w strings.Builder
	w.WriteString("## Over a link, with TLS: HTTP/1.1 or HTTP/2\n\n")
	fmt.Fprintf(&w, "A registry serving TLS and offering HTTP/2 behind the delay proxy (%s round trip, a 4 MiB window per connection); median (min–max) of the rounds, interleaved, cold (no connection kept).\n\n", rtt)
	for _, bi := range list {
		repo := func(kind string, r int) string { return fmt.Sprintf("tls-%s/%s-%d", kind, b.idx(bi), r) }
		scens := []scen{
			{"ctrpush (HTTP/1.1)", func(r int) (sample, error) {
				if err := b.stripLabels(); err != nil {
					return sample{}, err
				}
				return timed(func() error {
					_, _, err := b.ctrpushRun("push", "--hosts-dir", hostsDir, bi.local, proxy.Addr+"/"+repo("ctrpush", r)+":1")
					return err
				})
			}},
			{"raw pusher, HTTP/1.1, 64 in flight", func(r int) (sample, error) {
				return timed(func() error { return b.rawPushWith(h1, bi, proxy.Addr, repo("h1", r), 64) })
			}},
			{"raw pusher, HTTP/2, 64 streams on one connection", func(r int) (sample, error) {
				return timed(func() error { return b.rawPushWith(h2, bi, proxy.Addr, repo("h2", r), 64) })
			}},
		}
		if b.baseline != "" {
			scens = append(scens, scen{"ctrpush at " + b.baselineRev + " (HTTP/1.1)", func(r int) (sample, error) {
				if err := b.stripLabels(); err != nil {
					return sample{}, err
				}
				return timed(func() error {
					_, _, err := b.run(b.baseline, "--root", b.root, "push", "--hosts-dir", hostsDir, bi.local, proxy.Addr+"/"+repo("base", r)+":1")
					return err
				})
			}})
		}
		rows, err := b.linkRounds(fmt.Sprintf("tls %s", rtt), proxy, bi, scens)
		if err != nil {
			return "", err
		}
		var h1Median time.Duration // 0 (ratios +Inf) when -rows left the row out
		if h1 := findRow(rows, "raw pusher, HTTP/1.1"); h1 != nil {
			h1Median = median(h1.durations())
		}
		fmt.Fprintf(&w, "### %s (%.1f MiB of blobs)\n\n| scenario | median s | min–max s | × HTTP/1.1 raw | connections |\n|---|---|---|---|---|\n", bi.id, float64(bi.bytes)/mib)
		for _, r := range rows {
			d := r.durations()
			fmt.Fprintf(&w, "| %s | %.3f | %.3f–%.3f | %.2f | %d |\n", r.name, median(d).Seconds(), slices.Min(d).Seconds(), slices.Max(d).Seconds(),
				float64(median(d))/float64(h1Median), r.samples[len(r.samples)/2].conns)
		}
		w.WriteString("\n")
	}
	return w.String(), nil
}

// scen is one row of a link table: what round r of it does.
type scen struct {
	name string
	run  func(r int) (sample, error)
}

// linkRounds runs scens interleaved, b.runs rounds, through proxy,
// counting the connections each opens; label starts each log line.
func (b *bench) linkRounds(label string, proxy *delayproxy.Proxy, bi *benchImage, scens []scen) ([]*row, error) {
	scens = slices.DeleteFunc(slices.Clone(scens), func(sc scen) bool { return !b.rowFilter.MatchString(sc.name) })
	rows := make([]*row, len(scens))
	for i, sc := range scens {
		rows[i] = &row{image: bi.id, name: sc.name}
	}
	for r := 0; r < b.runs; r++ {
		for i, sc := range scens {
			conns := proxy.Connections()
			smp, err := sc.run(r)
			if err != nil {
				return nil, fmt.Errorf("%s %s %s: %w", label, bi.id, sc.name, err)
			}
			smp.conns = proxy.Connections() - conns
			rows[i].samples = append(rows[i].samples, smp)
			fmt.Fprintf(b.log, "%s %-16s %-48s round %d: %6.3fs %4d req %3d conns\n", label, bi.id, sc.name, r, smp.dur.Seconds(), smp.requests, smp.conns)
		}
	}
	return rows, nil
}
