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
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/mount"
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
}

type row struct {
	image, name string
	samples     []sample
	note        string
}

type bench struct {
	work, bin, root string
	ctrpush, crane  string
	reg             *registrytest.Registry
	runs            int
	rows            []*row
	log             io.Writer
}

func main() {
	runs := flag.Int("runs", 5, "rounds of every scenario (≥5 for the record)")
	big := flag.Bool("big", false, "also measure one 2 GiB layer (slow; for peak RSS)")
	out := flag.String("out", "docs/BENCHMARKS.md", "write the report here ('' to skip)")
	only := flag.String("only", "", "comma-separated image ids to run (default all)")
	flag.Parse()
	_ = log.SetLevel("error")
	if err := run(*runs, *big, *out, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(runs int, big bool, out, only string) error {
	work, err := os.MkdirTemp("", "ctrpush-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{work: work, bin: filepath.Join(work, "bin"), root: filepath.Join(work, "store"), runs: runs, log: os.Stderr}
	if err := b.build(); err != nil {
		return err
	}
	reg, stop, err := registrytest.StartProcess(filepath.Join(work, "registry"))
	if err != nil {
		return err
	}
	defer stop()
	b.reg = reg

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
	for _, bi := range imgs {
		if err := b.measureImage(bi); err != nil {
			return fmt.Errorf("%s: %w", bi.id, err)
		}
	}
	var sweep *benchImage
	for _, bi := range imgs {
		if bi.id == "8x32MiB" {
			sweep = bi
		}
	}
	var sweepRows []*row
	if sweep != nil {
		if sweepRows, err = b.sweep(sweep); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
	}
	report := b.report(imgs, sweepRows)
	fmt.Print(report)
	if out != "" {
		return os.WriteFile(out, []byte(report), 0o644)
	}
	return nil
}

// build compiles ctrpush and the pinned peers into the work directory.
func (b *bench) build() error {
	b.ctrpush = filepath.Join(b.bin, "ctrpush")
	cmd := exec.Command("go", "build", "-o", b.ctrpush, "github.com/ctrpush/ctrpush/cmd/ctrpush")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build ctrpush: %v\n%s", err, out)
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
	return nil
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
	}
	if b.crane != "" {
		scenarios = append(scenarios, scenario{"crane push (cold)", func(r int) (sample, error) {
			args := []string{"push", bi.dir, fmt.Sprintf("%s/crane/%s-%d:1", host, b.idx(bi), r)}
			if len(bi.img.Manifests) > 1 {
				args = []string{"push", "--index", bi.dir, fmt.Sprintf("%s/crane/%s-%d:1", host, b.idx(bi), r)}
			}
			return b.measure(func() error { return b.exec(b.crane, args...) })
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
	for _, n := range []string{"ctrpush from a containerd daemon", "ctr images push", "ctr images push --local"} {
		b.rows = append(b.rows, &row{image: bi.id, name: n, note: "needs the daemon mode (issue 6): row kept ready"})
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

// ctrpushRun runs the binary on the bench store; it returns stdout and the
// peak RSS in KiB.
func (b *bench) ctrpushRun(args ...string) (string, int64, error) {
	cmd := exec.Command(b.ctrpush, append([]string{"--root", b.root}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", 0, fmt.Errorf("ctrpush %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return stdout.String(), rss, nil
}

func (b *bench) exec(bin string, args ...string) error {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return nil
}

// stripLabels removes every distribution-source label from the bench
// store, so a "cold" push really uploads instead of mounting.
func (b *bench) stripLabels() error {
	ctx := namespaces.WithNamespace(context.Background(), imageservice.DefaultNamespace)
	st, err := imageservice.OpenEmbedded(ctx, b.root)
	if err != nil {
		return err
	}
	defer st.Close()
	cs := st.ContentStore()
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

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

func (b *bench) do(method, u string, body io.Reader, size int64, contentType string, want int) (*http.Response, error) {
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
	resp, err := client.Do(req)
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
	base := "http://" + b.reg.Host + "/v2/" + repo
	var g errgroup.Group
	g.SetLimit(4)
	for _, d := range b.blobs(bi) {
		g.Go(func() error {
			resp, err := b.do(http.MethodPost, base+"/blobs/uploads/", nil, 0, "", http.StatusAccepted)
			if err != nil {
				return err
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil {
				return err
			}
			if !loc.IsAbs() {
				loc.Scheme, loc.Host = "http", b.reg.Host
			}
			q := loc.Query()
			q.Set("digest", d.Digest.String())
			loc.RawQuery = q.Encode()
			f, err := os.Open(filepath.Join(bi.dir, "blobs", "sha256", d.Digest.Encoded()))
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = b.do(http.MethodPut, loc.String(), f, d.Size, "application/octet-stream", http.StatusCreated)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return b.putManifests(bi, base)
}

func (b *bench) putManifests(bi *benchImage, base string) error {
	ms := b.manifests(bi)
	for i, m := range ms {
		ref := m.Digest.String()
		if i == len(ms)-1 {
			ref = "1"
		}
		data := bi.img.Blobs[m.Digest]
		if _, err := b.do(http.MethodPut, base+"/manifests/"+ref, bytes.NewReader(data), int64(len(data)), m.MediaType, http.StatusCreated); err != nil {
			return err
		}
	}
	return nil
}

// mountLoop mounts every blob from one repository into another, 4 at a
// time, then puts the manifests: the least a mount push can do.
func (b *bench) mountLoop(bi *benchImage, from, to string) error {
	base := "http://" + b.reg.Host + "/v2/" + to
	var g errgroup.Group
	g.SetLimit(4)
	for _, d := range b.blobs(bi) {
		g.Go(func() error {
			_, err := b.do(http.MethodPost, base+"/blobs/uploads/?"+url.Values{"mount": {d.Digest.String()}, "from": {from}}.Encode(), nil, 0, "", http.StatusCreated)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return b.putManifests(bi, base)
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
	fmt.Fprintf(&w, "# Benchmarks\n\nProduced by `make bench` (`go run ./bench -runs %d`) on %s.\n\n", b.runs, time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&w, "Machine: %d cores, %s/%s, %s. Registry: distribution v3 (filesystem storage, loopback, its own process). ", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(&w, "Peers: crane from `%s`.\n\n", craneModule)
	fmt.Fprintf(&w, "Every scenario runs interleaved with the others in each of %d rounds; times are the median (min–max). ", b.runs)
	w.WriteString("\"× raw\" is the median time over the raw limit's (lower is better); requests and bytes are read from the registry's own request log; RSS is the ctrpush process's peak.\n\n")
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
	if len(sweep) > 0 {
		w.WriteString("## Upload concurrency sweep (8x32MiB, cold push)\n\n| scenario | median s | min–max s | MiB/s | × raw | requests | MiB uploaded | peak RSS MiB |\n|---|---|---|---|---|---|---|---|\n")
		var raw time.Duration
		for _, r := range b.rows {
			if r.image == "8x32MiB" && strings.HasPrefix(r.name, "raw limit") {
				raw = median(r.durations())
			}
		}
		for _, r := range sweep {
			b.writeRow(&w, r, byImage["8x32MiB"], raw)
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

