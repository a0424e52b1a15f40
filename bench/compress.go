// Compression on push (issue 25): `push --compression zstd|gzip` of an
// image of uncompressed layers (as `docker save` holds them), against a
// plain push, compressing alone (the same code and settings in a process
// of its own, no push) and a push of the converted image alone (the
// converted copies already in the store).

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/store"
)

// compressGoal is issue 25's bound on a zstd push from cold over the
// slower of compressing alone and pushing the converted image alone;
// compressRSSGoal its bound on the push's peak RSS.
const (
	compressGoal    = 1.1
	compressRSSGoal = 128 // MiB
)

// convertedLabelPrefix starts the label linking a layer to its converted
// copy (imageservice/compress.go), one per format and level.
const convertedLabelPrefix = "containerd.io/gc.ref.content.ctrpush.compressed."

// compressSample is one round of one row of the compression table.
type compressSample struct {
	dur      time.Duration
	requests int
	upBytes  int64 // blob bytes PUT or PATCHed to the registry
	outBytes int64 // compressed bytes (the workers' rows)
	rssKB    int64
	cpu      time.Duration
	// machine is the CPU time of every process on the machine while the
	// measured process runs (the registry's too).
	machine time.Duration
}

type compressRow struct {
	name string
	// kind: "push" (ctrpush, bytes uploaded) or "alone" (a worker,
	// bytes compressed).
	kind    string
	samples []compressSample
	run     func(r int) (compressSample, error)
}

func (r *compressRow) durations() []time.Duration {
	return durationsOf(r.samples, func(s compressSample) time.Duration { return s.dur })
}

func (r *compressRow) medianOf(f func(compressSample) int64) int64 { return medianOf(r.samples, f) }

func (r *compressRow) maxOf(f func(compressSample) int64) int64 {
	var m int64
	for _, s := range r.samples {
		m = max(m, f(s))
	}
	return m
}

// compressImage is 8 uncompressed layers of 32 MiB, the bottom 4 holding
// compressible text and the top 4 random bytes, made in memory
// (testimage.NewOnDisk writes every layer gzip-wrapped), written as an
// OCI layout and imported into the bench store.
func (b *bench) compressImage() (*benchImage, error) {
	bi := &benchImage{id: "8x32MiB uncompressed, 4 compressible", spec: testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 8, LayerSize: 32 * mib, Seed: 7,
		Uncompressed: true, CompressibleLayers: 4}}
	img, err := testimage.New(bi.spec)
	if err != nil {
		return nil, err
	}
	bi.img = img
	bi.dir = filepath.Join(b.work, "image92")
	bi.local = "bench.local/image92:1"
	if err := img.WriteOCILayout(bi.dir, testimage.NameAnnotations(bi.local, "1")); err != nil {
		return nil, err
	}
	img.Blobs = nil // 256 MiB: the layout has them
	runtime.GC()
	for _, d := range b.blobs(bi) {
		bi.bytes += d.Size
	}
	bi.bytes += img.Target.Size
	if _, _, err := b.ctrpushRun("import", bi.dir); err != nil {
		return nil, err
	}
	return bi, nil
}

// layerFiles are the paths of bi's layers in its OCI layout.
func (b *bench) layerFiles(bi *benchImage) []string {
	var out []string
	for _, l := range bi.img.Manifests[0].Layers {
		out = append(out, filepath.Join(bi.dir, "blobs", "sha256", l.Digest.Encoded()))
	}
	return out
}

// dropCopies removes the converted copies an earlier push left in the
// store: the labels linking the layers to them, then the store's garbage
// collection, which removes the copies (checked). It returns how many
// there were.
func (b *bench) dropCopies() (int, error) {
	ctx := namespaces.WithNamespace(context.Background(), imageservice.DefaultNamespace)
	st, err := store.OpenEmbedded(ctx, b.root)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	cs := st.ContentStore()
	type link struct {
		layer digest.Digest
		paths []string
	}
	var links []link
	var copies []digest.Digest
	if err := cs.Walk(ctx, func(info content.Info) error {
		l := link{layer: info.Digest}
		for k, v := range info.Labels {
			if strings.HasPrefix(k, convertedLabelPrefix) {
				l.paths = append(l.paths, "labels."+k)
				copies = append(copies, digest.Digest(v))
			}
		}
		if l.paths != nil {
			links = append(links, l)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, l := range links {
		if _, err := cs.Update(ctx, content.Info{Digest: l.layer}, l.paths...); err != nil {
			return 0, err
		}
	}
	if err := st.GarbageCollect(ctx); err != nil {
		return 0, err
	}
	for _, d := range copies {
		if _, err := cs.Info(ctx, d); !errdefs.IsNotFound(err) {
			return 0, fmt.Errorf("the converted copy %s is still in the store after garbage collection (%v)", d, err)
		}
	}
	return len(copies), nil
}

var wouldCompress = regexp.MustCompile(`Would compress with \S+ \(level \d+\): (\d+) layer\(s\) to convert, (\d+) converted by an earlier push`)

// checkCopies asks a dry run how many of the image's layers a push with
// compression args would convert and how many it would take from the
// store, and fails unless that is convert and reuse.
func (b *bench) checkCopies(bi *benchImage, ref string, convert, reuse int, args ...string) error {
	out, _, err := b.ctrpushRun(append(append([]string{"push", "--dry-run"}, args...), bi.local, ref)...)
	if err != nil {
		return err
	}
	m := wouldCompress.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("the dry run says nothing of compression:\n%s", out)
	}
	if m[1] != strconv.Itoa(convert) || m[2] != strconv.Itoa(reuse) {
		return fmt.Errorf("the dry run would convert %s layers and reuse %s, want %d and %d", m[1], m[2], convert, reuse)
	}
	return nil
}

// pushRow measures one ctrpush push (distribution-source labels removed
// first: nothing is mounted), its bytes from the registry's log.
func (b *bench) pushRow(args ...string) (compressSample, error) {
	if err := b.stripLabels(); err != nil {
		return compressSample{}, err
	}
	if err := b.resetLog(); err != nil {
		return compressSample{}, err
	}
	busy, start := machineBusy(), time.Now()
	rss, _, _, cpu, err := b.runIO(b.ctrpush, append([]string{"--root", b.root}, args...)...)
	s := compressSample{dur: time.Since(start), rssKB: rss, cpu: cpu, machine: machineBusy() - busy}
	if err != nil {
		return s, err
	}
	reqs, err := b.requests()
	if err != nil {
		return s, err
	}
	s.requests = len(reqs)
	for _, q := range reqs {
		if strings.Contains(q.Path, "/blobs/uploads/") && (q.Method == http.MethodPut || q.Method == http.MethodPatch) {
			s.upBytes += q.BodyBytes
		}
	}
	return s, nil
}

// machineBusy is the busy time of every core since boot (/proc/stat's
// ticks, 100 a second).
func machineBusy() time.Duration {
	busy, _ := cpuTimes()
	return time.Duration(busy) * 10 * time.Millisecond
}

// aloneRow measures compressing bi's layers alone, in a process of its
// own (this program as a worker, see compressWorker); out is "" to
// discard the compressed bytes, or a directory to write them to.
func (b *bench) aloneRow(bi *benchImage, format string, level int, out string) (compressSample, error) {
	self, err := os.Executable()
	if err != nil {
		return compressSample{}, err
	}
	result := filepath.Join(b.work, "compress-result")
	if out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return compressSample{}, err
		}
		defer os.RemoveAll(out)
	} else {
		out = "-"
	}
	args := append([]string{"-compress-worker", format, strconv.Itoa(level), out, result}, b.layerFiles(bi)...)
	busy, start := machineBusy(), time.Now()
	rss, _, _, cpu, err := b.runIO(self, args...)
	s := compressSample{dur: time.Since(start), rssKB: rss, cpu: cpu, machine: machineBusy() - busy}
	if err != nil {
		return s, err
	}
	data, err := os.ReadFile(result)
	if err != nil {
		return s, err
	}
	s.outBytes, err = strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return s, err
}

// compressWorker is this program run as `bench -compress-worker FORMAT
// LEVEL OUT RESULT LAYER...`: it compresses the layer files as
// imageservice/compress.go converts layers — two at a time, each read
// whole, hashed (its diff ID), compressed by klauspost/compress (zstd with
// GOMAXPROCS encoders, or pgzip with 1 MiB blocks on GOMAXPROCS
// goroutines), the output hashed too — and writes the output to a file in
// directory OUT, synced as the store's writer syncs a commit (OUT "-":
// discarded). It writes the total compressed bytes to file RESULT.
func compressWorker(args []string) error {
	if len(args) < 5 {
		return errors.New("usage: -compress-worker FORMAT LEVEL OUT RESULT LAYER…")
	}
	format, out, result, files := args[0], args[2], args[3], args[4:]
	level, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	sizes := make([]int64, len(files))
	var g errgroup.Group
	g.SetLimit(2) // as compress.go: each conversion uses every core already
	for i, name := range files {
		g.Go(func() error {
			n, err := compressFile(name, format, level, out, i)
			sizes[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var total int64
	for _, n := range sizes {
		total += n
	}
	return os.WriteFile(result, []byte(strconv.FormatInt(total, 10)), 0o644)
}

func compressFile(name, format string, level int, out string, i int) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var dst io.Writer = io.Discard
	var of *os.File
	if out != "-" {
		if of, err = os.Create(filepath.Join(out, fmt.Sprintf("layer-%d", i))); err != nil {
			return 0, err
		}
		defer of.Close()
		dst = of
	}
	outDigest := digest.SHA256.Digester()
	counted := &countingWriter{w: io.MultiWriter(dst, outDigest.Hash())}
	var zw io.WriteCloser
	switch format {
	case "zstd":
		zw, err = zstd.NewWriter(counted, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	case "gzip":
		var gw *pgzip.Writer
		if gw, err = pgzip.NewWriterLevel(counted, level); err == nil {
			err = gw.SetConcurrency(1<<20, runtime.GOMAXPROCS(0))
			zw = gw
		}
	default:
		err = fmt.Errorf("format %q: zstd or gzip", format)
	}
	if err != nil {
		return 0, err
	}
	diffID := digest.SHA256.Digester()
	if _, err := io.Copy(zw, io.TeeReader(io.NewSectionReader(f, 0, fi.Size()), diffID.Hash())); err != nil {
		zw.Close()
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	_, _ = diffID.Digest(), outDigest.Digest()
	if of != nil {
		if err := of.Sync(); err != nil {
			return 0, err
		}
	}
	return counted.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// compressWorkerFlag makes this program the worker of the compressing
// alone rows (compressWorker) instead of the bench.
var compressWorkerFlag = flag.Bool("compress-worker", false, "internal: compress layer files as a push converts them (the compressing alone rows)")

// compress measures the compression table: per round, in this order, a
// plain push; compressing alone (zstd 3, output discarded, then written
// to files as the push's conversion writes its copies); the zstd push
// from cold (the converted copies an earlier round left removed: their
// labels deleted and the store's garbage collected); the zstd push with
// the copies in the store (pushing the converted image alone); zstd 1
// and 9 alone; then gzip 6 alone, from cold and with its copies. Every
// push goes to a new repository with the distribution-source labels
// removed, so nothing is mounted.
func (b *bench) compress() (string, error) {
	bi, err := b.compressImage()
	if err != nil {
		return "", err
	}
	host := b.reg.Host
	ref := func(kind string, r int) string { return fmt.Sprintf("%s/compress-%s/%d:1", host, kind, r) }
	cold := func(kind, format string, r int) (compressSample, error) {
		if _, err := b.dropCopies(); err != nil {
			return compressSample{}, err
		}
		if err := b.checkCopies(bi, ref(kind, r), len(bi.img.Manifests[0].Layers), 0, "--compression", format); err != nil {
			return compressSample{}, fmt.Errorf("before the push from cold: %w", err)
		}
		return b.pushRow("push", "--compression", format, bi.local, ref(kind, r))
	}
	warm := func(kind, format string, r int) (compressSample, error) {
		n := len(bi.img.Manifests[0].Layers)
		if b.checkCopies(bi, ref(kind, r), 0, n, "--compression", format) != nil {
			// The push from cold was left out (-rows): convert, unmeasured.
			if _, _, err := b.ctrpushRun("push", "--compression", format, bi.local, ref(kind+"-prepare", r)); err != nil {
				return compressSample{}, err
			}
		}
		if err := b.checkCopies(bi, ref(kind, r), 0, n, "--compression", format); err != nil {
			return compressSample{}, fmt.Errorf("before the push of the converted image: %w", err)
		}
		return b.pushRow("push", "--compression", format, bi.local, ref(kind, r))
	}
	rows := []*compressRow{
		{name: "a. ctrpush push, no compression", kind: "push", run: func(r int) (compressSample, error) {
			return b.pushRow("push", bi.local, ref("plain", r))
		}},
		{name: "b. compressing alone, zstd 3 (output discarded)", kind: "alone", run: func(r int) (compressSample, error) {
			return b.aloneRow(bi, "zstd", 3, "")
		}},
		{name: "b'. converting alone, zstd 3 (output written to files, synced)", kind: "alone", run: func(r int) (compressSample, error) {
			return b.aloneRow(bi, "zstd", 3, filepath.Join(b.work, "compress-out"))
		}},
		{name: "d. ctrpush push --compression zstd, from cold", kind: "push", run: func(r int) (compressSample, error) {
			return cold("zstd-cold", "zstd", r)
		}},
		{name: "c. ctrpush push --compression zstd, copies in the store", kind: "push", run: func(r int) (compressSample, error) {
			return warm("zstd-warm", "zstd", r)
		}},
		{name: "compressing alone, zstd 1 (output discarded)", kind: "alone", run: func(r int) (compressSample, error) {
			return b.aloneRow(bi, "zstd", 1, "")
		}},
		{name: "compressing alone, zstd 9 (output discarded)", kind: "alone", run: func(r int) (compressSample, error) {
			return b.aloneRow(bi, "zstd", 9, "")
		}},
		{name: "b. compressing alone, gzip 6 (output discarded)", kind: "alone", run: func(r int) (compressSample, error) {
			return b.aloneRow(bi, "gzip", 6, "")
		}},
		{name: "d. ctrpush push --compression gzip, from cold", kind: "push", run: func(r int) (compressSample, error) {
			return cold("gzip-cold", "gzip", r)
		}},
		{name: "c. ctrpush push --compression gzip, copies in the store", kind: "push", run: func(r int) (compressSample, error) {
			return warm("gzip-warm", "gzip", r)
		}},
	}
	var keep []*compressRow
	for _, row := range rows {
		if b.rowFilter.MatchString(row.name) {
			keep = append(keep, row)
		}
	}
	rows = keep
	for r := 0; r < b.runs; r++ {
		for _, row := range rows {
			smp, err := row.run(r)
			if err != nil {
				return "", fmt.Errorf("%s round %d: %w", row.name, r, err)
			}
			row.samples = append(row.samples, smp)
			fmt.Fprintf(b.log, "compress %-62s round %d: %6.3fs %4d req %7.1f MiB up %7.1f MiB out %4d MiB RSS %5.2fs CPU %5.2fs machine CPU\n", row.name, r,
				smp.dur.Seconds(), smp.requests, float64(smp.upBytes)/mib, float64(smp.outBytes)/mib, smp.rssKB/1024, smp.cpu.Seconds(), smp.machine.Seconds())
		}
	}
	if _, err := b.dropCopies(); err != nil { // leave the store as it was
		return "", err
	}
	return compressTable(bi, rows), nil
}

// compressTable writes the table, the goals and the sums.
func compressTable(bi *benchImage, rows []*compressRow) string {
	var w strings.Builder
	var layers int64
	for _, l := range bi.img.Manifests[0].Layers {
		layers += l.Size
	}
	find := func(name string) *compressRow {
		for _, r := range rows {
			if r.name == name {
				return r
			}
		}
		return nil
	}
	fmt.Fprintf(&w, "## Compression on push (%s, loopback)\n\n", bi.id)
	fmt.Fprintf(&w, "An image of 8 uncompressed layers of 32 MiB (%.1f MiB of blobs; as `docker save` holds them): 4 hold a text of words drawn at random from a list of 32 (compressible), 4 random bytes (incompressible). ", float64(bi.bytes)/mib)
	w.WriteString("`ctrpush push --compression zstd|gzip` converts every layer into the store, then pushes the converted image. ")
	w.WriteString("\"Compressing alone\" runs the conversion's code and settings in a process of its own (this program as a worker), without the store or a push: each layer file read, hashed, compressed by klauspost/compress (zstd with GOMAXPROCS encoders; pgzip, 1 MiB blocks on GOMAXPROCS goroutines), the output hashed, two layers at a time; \"converting alone\" also writes the output to files and syncs them, as the store's writer does. ")
	w.WriteString("\"From cold\" starts with no converted copy in the store (the labels linking the layers to their copies deleted and the store's garbage collected before the row, checked by a dry run); \"copies in the store\" is the next push, which converts nothing and uploads the converted image (again checked by a dry run). ")
	w.WriteString("Every push goes to a new repository with the distribution-source labels removed, so nothing is mounted; rows run interleaved in each round. ")
	w.WriteString("\"× layers\" is the bytes uploaded (pushes: the layers and the config) or compressed (alone: the layers) over the layers' bytes; peak RSS and CPU (user and system) are the process's own; \"machine CPU\" is the busy time of every core while the measured process runs (`/proc/stat`: the registry's work too).\n\n")
	w.WriteString("| scenario | median s | min–max s | requests | MiB uploaded / compressed | × layers | peak RSS MiB (max) | CPU s | machine CPU s |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		d := r.durations()
		bytes := r.medianOf(func(s compressSample) int64 { return s.upBytes })
		reqs := fmt.Sprint(r.medianOf(func(s compressSample) int64 { return int64(s.requests) }))
		if r.kind == "alone" {
			bytes, reqs = r.medianOf(func(s compressSample) int64 { return s.outBytes }), "–"
		}
		fmt.Fprintf(&w, "| %s | %.3f | %.3f–%.3f | %s | %.1f | %.3f | %.0f (%.0f) | %.2f | %.2f |\n", r.name, median(d).Seconds(), slices.Min(d).Seconds(), slices.Max(d).Seconds(),
			reqs, float64(bytes)/mib, float64(bytes)/float64(layers), float64(r.medianOf(func(s compressSample) int64 { return s.rssKB }))/1024, float64(r.maxOf(func(s compressSample) int64 { return s.rssKB }))/1024,
			time.Duration(r.medianOf(func(s compressSample) int64 { return int64(s.cpu) })).Seconds(),
			time.Duration(r.medianOf(func(s compressSample) int64 { return int64(s.machine) })).Seconds())
	}
	w.WriteString("\n")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	// per round i: f(i) for the rounds every row has.
	perRound := func(f func(i int) float64, rs ...*compressRow) []float64 {
		n := -1
		for _, r := range rs {
			if r == nil {
				return nil
			}
			if n < 0 || len(r.samples) < n {
				n = len(r.samples)
			}
		}
		var out []float64
		for i := 0; i < n; i++ {
			out = append(out, f(i))
		}
		slices.Sort(out)
		return out
	}
	spread := func(v []float64) string {
		return fmt.Sprintf("median %.2f (%.2f–%.2f)", medianF(v), v[0], v[len(v)-1])
	}
	sec := func(r *compressRow, i int) float64 { return r.samples[i].dur.Seconds() }
	for _, format := range []string{"zstd 3", "gzip 6"} {
		f, _, _ := strings.Cut(format, " ")
		plain := find("a. ctrpush push, no compression")
		alone, conv := find("b. compressing alone, "+format+" (output discarded)"), find("b'. converting alone, "+format+" (output written to files, synced)")
		cold, warm := find("d. ctrpush push --compression "+f+", from cold"), find("c. ctrpush push --compression "+f+", copies in the store")
		v := perRound(func(i int) float64 { return sec(cold, i) / max(sec(alone, i), sec(warm, i)) }, cold, alone, warm)
		if len(v) > 0 {
			goal := ""
			if f == "zstd" {
				goal = fmt.Sprintf("; goal ≤ %.1f: %s", compressGoal, verdict(medianF(v) <= compressGoal))
			}
			fmt.Fprintf(&w, "- %s push from cold ÷ the slower of compressing alone and pushing the converted image alone, per round: %s%s.\n", f, spread(v), goal)
			sum := perRound(func(i int) float64 { return sec(cold, i) / (sec(alone, i) + sec(warm, i)) }, cold, alone, warm)
			fmt.Fprintf(&w, "- %s push from cold ÷ (compressing alone + pushing the converted image alone), per round: %s", f, spread(sum))
			if conv != nil {
				s2 := perRound(func(i int) float64 { return sec(cold, i) / (sec(conv, i) + sec(warm, i)) }, cold, conv, warm)
				fmt.Fprintf(&w, "; ÷ (converting alone + pushing the converted image alone): %s", spread(s2))
			}
			w.WriteString(".\n")
			floor := perRound(func(i int) float64 {
				return (alone.samples[i].machine.Seconds() + warm.samples[i].machine.Seconds()) / float64(runtime.NumCPU()) / max(sec(alone, i), sec(warm, i))
			}, alone, warm)
			fmt.Fprintf(&w, "- %s: the machine CPU of compressing alone and of pushing the converted image alone, spread over the %d cores, over the slower of the two, per round: %s (what even a push that overlapped them fully would take here).\n",
				f, runtime.NumCPU(), spread(floor))
		}
		if cold != nil {
			rss := float64(cold.medianOf(func(s compressSample) int64 { return s.rssKB })) / 1024
			top := float64(cold.maxOf(func(s compressSample) int64 { return s.rssKB })) / 1024
			over := 0
			for _, s := range cold.samples {
				if float64(s.rssKB)/1024 > compressRSSGoal {
					over++
				}
			}
			fmt.Fprintf(&w, "- %s push from cold: peak RSS %.0f MiB (max %.0f, above %d MiB in %d of %d rounds)", f, rss, top, compressRSSGoal, over, len(cold.samples))
			if f == "zstd" {
				fmt.Fprintf(&w, "; goal ≤ %d MiB: %s", compressRSSGoal, verdict(rss <= compressRSSGoal))
			}
			up := float64(cold.medianOf(func(s compressSample) int64 { return s.upBytes }))
			fmt.Fprintf(&w, "; uploaded %.1f MiB, %.3f × the layers (%.1f MiB)", up/mib, up/float64(layers), float64(layers)/mib)
			if plain != nil {
				fmt.Fprintf(&w, "; %.2f × the time of the push without compression", median(cold.durations()).Seconds()/median(plain.durations()).Seconds())
			}
			w.WriteString(".\n")
		}
	}
	var levels []string
	for _, l := range []int{1, 3, 9} {
		name := fmt.Sprintf("compressing alone, zstd %d (output discarded)", l)
		r := find(name)
		if r == nil {
			r = find("b. " + name)
		}
		if r == nil {
			continue
		}
		out := float64(r.medianOf(func(s compressSample) int64 { return s.outBytes }))
		levels = append(levels, fmt.Sprintf("level %d %.3f s, %.1f MiB (%.3f × the layers)", l, median(r.durations()).Seconds(), out/mib, out/float64(layers)))
	}
	if levels != nil {
		fmt.Fprintf(&w, "- zstd levels, compressing alone: %s.\n", strings.Join(levels, "; "))
	}
	w.WriteString("\n")
	return w.String()
}
