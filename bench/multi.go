// Several destinations (issue 24): one push to two registries, each behind
// its own delay proxy, against a push to each alone; the bytes the pushing
// process reads from the store, and its peak RSS.

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/internal/delayproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// multiRTT is the round trip of each destination's link.
const multiRTT = 50 * time.Millisecond

// multiGoal is issue 24's bound on a push to two destinations over the
// slower of the two pushes alone.
const multiGoal = 1.15

// smallImage is 100x1MiB, the many-blobs image of the link tables, made
// and imported once for every table that uses it.
func (b *bench) smallImage() (*benchImage, error) {
	if b.small != nil {
		return b.small, nil
	}
	small := &benchImage{id: "100x1MiB", spec: testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 100, LayerSize: 1 * mib, Seed: 6}}
	if err := b.prepare(small, 91); err != nil {
		return nil, err
	}
	b.small = small
	return small, nil
}

// multiSample is one round of one row of the several-destinations table;
// index 0 is destination A, 1 is B.
type multiSample struct {
	dur      time.Duration
	requests [2]int   // in each registry's request log
	upBytes  [2]int64 // blob bytes PATCHed or PUT to each registry
	conns    [2]int64 // connections opened through each delay proxy
	// Of the ctrpush process (the sum over both processes for the row of
	// two processes); 0 for the raw pusher.
	rssKB  int64
	rchar  int64         // bytes read: rchar of /proc/PID/io
	cpu    time.Duration // user and system time
	faults int64         // minor page faults (in the log only)
	// busy is the share of the machine's CPU time not idle during the
	// round (every process, the registries and the delay proxies too).
	busy float64
}

type multiRow struct {
	name    string
	ctrpush bool // a ctrpush row: it reads from the store
	samples []multiSample
}

func (r *multiRow) durations() []time.Duration {
	return durationsOf(r.samples, func(s multiSample) time.Duration { return s.dur })
}

func (r *multiRow) medianOf(f func(multiSample) int64) int64 { return medianOf(r.samples, f) }

// multi measures, over two links of multiRTT (a window per connection as
// the other link tables), pushes of 100x1MiB and of 8x32MiB (when among
// imgs) to registry A alone, to B alone, and to A and B in one run, beside
// two ctrpush processes at once (one per destination: what one would do
// without several DESTs) and the raw pusher, alone and to both at once
// (what the machine allows). Every row of every round pushes to a new
// repository, and every ctrpush row starts with the store's
// distribution-source labels removed: a repository an earlier row or round
// pushed to in the same registry would otherwise be mounted from.
func (b *bench) multi(imgs []*benchImage) (string, error) {
	small, err := b.smallImage()
	if err != nil {
		return "", err
	}
	list := []*benchImage{small}
	for _, bi := range imgs {
		if bi.id == "8x32MiB" {
			list = append(list, bi)
		}
	}
	regB, stopB, err := registrytest.StartProcess(filepath.Join(b.work, "registry-b"))
	if err != nil {
		return "", err
	}
	defer stopB()
	hosts := [2]string{b.reg.Host, regB.Host}
	var proxies [2]*delayproxy.Proxy
	for i, h := range hosts {
		p, err := delayproxy.Start(h, delayproxy.Config{Delay: multiRTT / 2, Window: 4 << 20})
		if err != nil {
			return "", err
		}
		defer p.Close()
		proxies[i] = p
	}
	// A client per side, so that one raw pusher closing its idle
	// connections never touches the other's.
	raws := [2]*rawClient{
		{c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, scheme: "http"},
		{c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, scheme: "http"},
	}
	var w strings.Builder
	fmt.Fprintf(&w, "## Several destinations in one push (two registries, each behind its own %s link)\n\n", multiRTT)
	fmt.Fprintf(&w, "Two registries (distribution v3, each its own process and storage), each behind its own delay proxy (%s round trip, a 4 MiB window per connection). ", multiRTT)
	w.WriteString("Cold pushes: a new repository for every row of every round, and the store's distribution-source labels removed before every ctrpush row, so nothing is mounted. ")
	w.WriteString("\"× slower alone\" is, per round, the row's time over the slower of \"ctrpush to A alone\" and \"ctrpush to B alone\" in that round, then the median (min–max) of the rounds; ")
	w.WriteString("\"read\" is what the pushing process read (`rchar` of `/proc/PID/io` once it has exited, before it is reaped: every read(2) and pread(2), the store's files from the page cache included, and the few KiB of the registries' responses), over the image's blob bytes; ")
	w.WriteString("peak RSS, read and CPU (user and system time) of the row of two processes are the sums over both; ")
	w.WriteString("\"machine busy\" is the share of both cores' time not idle during the row (`/proc/stat`: the registries, the delay proxies in the bench process and anything else running too), median of the rounds.\n\n")
	for _, bi := range list {
		repo := func(kind string, r int) string { return fmt.Sprintf("multi-%s/%s-%d", kind, b.idx(bi), r) }
		ref := func(side int, kind string, r int) string { return proxies[side].Addr + "/" + repo(kind, r) + ":1" }
		push := func(dests ...string) (multiSample, error) {
			if err := b.stripLabels(); err != nil {
				return multiSample{}, err
			}
			start := time.Now()
			rss, rchar, faults, cpu, err := b.runIO(b.ctrpush, append([]string{"--root", b.root, "push", bi.local}, dests...)...)
			return multiSample{dur: time.Since(start), rssKB: rss, rchar: rchar, faults: faults, cpu: cpu}, err
		}
		rows := []*multiRow{
			{name: "ctrpush to A alone", ctrpush: true},
			{name: "ctrpush to B alone", ctrpush: true},
			{name: "ctrpush to A and B in one run", ctrpush: true},
			{name: "two ctrpush processes at once, one to A, one to B", ctrpush: true},
			{name: "raw pusher to A alone, 64 in flight"},
			{name: "raw pushers to A and B at once, 64 in flight each"},
		}
		runs := []func(r int) (multiSample, error){
			func(r int) (multiSample, error) { return push(ref(0, "a", r)) },
			func(r int) (multiSample, error) { return push(ref(1, "b", r)) },
			func(r int) (multiSample, error) { return push(ref(0, "ab", r), ref(1, "ab", r)) },
			func(r int) (multiSample, error) {
				if err := b.stripLabels(); err != nil {
					return multiSample{}, err
				}
				var g errgroup.Group
				var rss, rchar, faults [2]int64
				var cpu [2]time.Duration
				start := time.Now()
				for side := range 2 {
					g.Go(func() error {
						var err error
						rss[side], rchar[side], faults[side], cpu[side], err = b.runIO(b.ctrpush, "--root", b.root, "push", bi.local, ref(side, "pair", r))
						return err
					})
				}
				err := g.Wait()
				return multiSample{dur: time.Since(start), rssKB: rss[0] + rss[1], rchar: rchar[0] + rchar[1], faults: faults[0] + faults[1], cpu: cpu[0] + cpu[1]}, err
			},
			func(r int) (multiSample, error) {
				start := time.Now()
				err := b.rawPushWith(raws[0], bi, proxies[0].Addr, repo("raw", r), 64)
				return multiSample{dur: time.Since(start)}, err
			},
			func(r int) (multiSample, error) {
				var g errgroup.Group
				start := time.Now()
				for side := range 2 {
					g.Go(func() error { return b.rawPushWith(raws[side], bi, proxies[side].Addr, repo("rawpair", r), 64) })
				}
				err := g.Wait()
				return multiSample{dur: time.Since(start)}, err
			},
		}
		var keep []*multiRow
		var keepRuns []func(int) (multiSample, error)
		for i, row := range rows {
			if b.rowFilter.MatchString(row.name) {
				keep, keepRuns = append(keep, row), append(keepRuns, runs[i])
			}
		}
		rows, runs = keep, keepRuns
		for r := 0; r < b.runs; r++ {
			for i, row := range rows {
				var conns [2]int64
				for side := range 2 {
					if err := resetLogAt(hosts[side]); err != nil {
						return "", err
					}
					conns[side] = proxies[side].Connections()
				}
				busy, total := cpuTimes()
				smp, err := runs[i](r)
				if busy2, total2 := cpuTimes(); total2 > total {
					smp.busy = float64(busy2-busy) / float64(total2-total)
				}
				if err != nil {
					return "", fmt.Errorf("multi %s %s round %d: %w", bi.id, row.name, r, err)
				}
				for side := range 2 {
					smp.conns[side] = proxies[side].Connections() - conns[side]
					reqs, err := requestsAt(hosts[side])
					if err != nil {
						return "", err
					}
					smp.requests[side] = len(reqs)
					for _, q := range reqs {
						if strings.Contains(q.Path, "/blobs/uploads/") && (q.Method == http.MethodPut || q.Method == http.MethodPatch) {
							smp.upBytes[side] += q.BodyBytes
						}
					}
				}
				row.samples = append(row.samples, smp)
				fmt.Fprintf(b.log, "multi %-10s %-52s round %d: %6.3fs %4d+%-4d req %7.1f+%-7.1f MiB up %7.1f MiB read %4d MiB RSS %5.2fs CPU %6d faults %3.0f%% busy\n", bi.id, row.name, r,
					smp.dur.Seconds(), smp.requests[0], smp.requests[1], float64(smp.upBytes[0])/mib, float64(smp.upBytes[1])/mib, float64(smp.rchar)/mib, smp.rssKB/1024, smp.cpu.Seconds(), smp.faults, smp.busy*100)
			}
		}
		w.WriteString(multiTable(bi, rows))
	}
	return w.String(), nil
}

// multiTable writes one image's table and its goals.
func multiTable(bi *benchImage, rows []*multiRow) string {
	var w strings.Builder
	find := func(name string) *multiRow {
		for _, r := range rows {
			if r.name == name {
				return r
			}
		}
		return nil
	}
	a, bb := find("ctrpush to A alone"), find("ctrpush to B alone")
	// slower is the slower of the two pushes alone in round i; 0 when a
	// row was left out.
	slower := func(i int) time.Duration {
		if a == nil || bb == nil || i >= len(a.samples) || i >= len(bb.samples) {
			return 0
		}
		return max(a.samples[i].dur, bb.samples[i].dur)
	}
	// ratios are a row's times over the slower alone, per round.
	ratios := func(r *multiRow) []float64 {
		var out []float64
		for i, s := range r.samples {
			if d := slower(i); d > 0 {
				out = append(out, s.dur.Seconds()/d.Seconds())
			}
		}
		slices.Sort(out)
		return out
	}
	ratioText := func(r *multiRow) string {
		v := ratios(r)
		if len(v) == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f (%.2f–%.2f)", medianF(v), v[0], v[len(v)-1])
	}
	blobs := float64(bi.bytes)
	fmt.Fprintf(&w, "### %s (%.1f MiB of blobs)\n\n", bi.id, blobs/mib)
	w.WriteString("| scenario | median s | min–max s | × slower alone | requests A + B | MiB uploaded A + B | MiB read | read × blobs | peak RSS MiB | ctrpush CPU s | machine busy | connections A + B |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		d := r.durations()
		read, readX, rss, cpu := "–", "–", "–", "–"
		if r.ctrpush {
			cpu = fmt.Sprintf("%.2f", time.Duration(r.medianOf(func(s multiSample) int64 { return int64(s.cpu) })).Seconds())
			v := float64(r.medianOf(func(s multiSample) int64 { return s.rchar }))
			read, readX = fmt.Sprintf("%.1f", v/mib), fmt.Sprintf("%.2f", v/blobs)
			rss = fmt.Sprintf("%.0f", float64(r.medianOf(func(s multiSample) int64 { return s.rssKB }))/1024)
		}
		reqs := fmt.Sprintf("%d + %d", r.medianOf(func(s multiSample) int64 { return int64(s.requests[0]) }), r.medianOf(func(s multiSample) int64 { return int64(s.requests[1]) }))
		up := fmt.Sprintf("%.1f + %.1f", float64(r.medianOf(func(s multiSample) int64 { return s.upBytes[0] }))/mib, float64(r.medianOf(func(s multiSample) int64 { return s.upBytes[1] }))/mib)
		conns := fmt.Sprintf("%d + %d", r.medianOf(func(s multiSample) int64 { return s.conns[0] }), r.medianOf(func(s multiSample) int64 { return s.conns[1] }))
		var busy []float64
		for _, s := range r.samples {
			busy = append(busy, s.busy)
		}
		fmt.Fprintf(&w, "| %s | %.3f | %.3f–%.3f | %s | %s | %s | %s | %s | %s | %s | %.0f%% | %s |\n", r.name, median(d).Seconds(), slices.Min(d).Seconds(), slices.Max(d).Seconds(),
			ratioText(r), reqs, up, read, readX, rss, cpu, medianF(busy)*100, conns)
	}
	w.WriteString("\n")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	if ab := find("ctrpush to A and B in one run"); ab != nil && a != nil && bb != nil && len(ratios(ab)) > 0 {
		v := ratios(ab)
		fmt.Fprintf(&w, "- A and B in one run ÷ the slower alone, per round: median %.2f (%.2f–%.2f); goal ≤ %.2f: %s.\n", medianF(v), v[0], v[len(v)-1], multiGoal, verdict(medianF(v) <= multiGoal))
		one := float64(ab.medianOf(func(s multiSample) int64 { return s.rchar })) / blobs
		var alone []int64
		for i := range min(len(a.samples), len(bb.samples)) {
			alone = append(alone, a.samples[i].rchar+bb.samples[i].rchar)
		}
		slices.Sort(alone)
		two := float64(alone[len(alone)/2]) / blobs
		fmt.Fprintf(&w, "- Read by the push to A and B in one run: %.2f × the image's blob bytes; by the two pushes alone together: %.2f ×; goal one copy: %s.\n", one, two, verdict(one < 1.05))
		rss := func(r *multiRow) float64 {
			return float64(r.medianOf(func(s multiSample) int64 { return s.rssKB })) / 1024
		}
		fmt.Fprintf(&w, "- Peak RSS: %.0f MiB for A and B in one run, %.0f MiB and %.0f MiB alone.\n", rss(ab), rss(a), rss(bb))
	}
	if one, two := find("raw pusher to A alone, 64 in flight"), find("raw pushers to A and B at once, 64 in flight each"); one != nil && two != nil {
		fmt.Fprintf(&w, "- What the machine allows: two raw pushers at once take %.2f × one alone.\n", median(two.durations()).Seconds()/median(one.durations()).Seconds())
	}
	w.WriteString("\n")
	return w.String()
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runIO runs a program as run does; it returns its peak RSS in KiB, the
// bytes it read (rchar of /proc/PID/io, read once the process has exited
// and before it is reaped — waitid with WNOWAIT — so that every read
// counts), its minor page faults and its CPU time (user and system).
func (b *bench) runIO(bin string, args ...string) (rssKB, rchar, faults int64, cpu time.Duration, err error) {
	cmd := exec.Command(bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, 0, err
	}
	pid := cmd.Process.Pid
	peakRSS := watchPeakRSS(pid)
	waitExited(pid)
	peak := peakRSS()
	rchar = procRchar(pid)
	if err := cmd.Wait(); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	if rchar < 0 {
		return peak, 0, 0, 0, fmt.Errorf("could not read /proc/%d/io", pid)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		faults = ru.Minflt
	}
	return peak, rchar, faults, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// waitExited waits until process pid has exited, without reaping it: its
// /proc entry stays, with the totals of every thread.
func waitExited(pid int) {
	const (
		pPID    = 1
		wExited = 0x4
		wNoWait = 0x1000000
	)
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])), wExited|wNoWait, 0, 0)
		if e != syscall.EINTR {
			return
		}
	}
}

// procRchar reads rchar from /proc/PID/io; -1 when it cannot.
func procRchar(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar:"); ok {
			var n int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &n); err == nil {
				return n
			}
		}
	}
	return -1
}

// cpuTimes reads the machine's CPU time from /proc/stat, in ticks: not
// idle (nor waiting for I/O), and in all.
func cpuTimes() (busy, total int64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:9] { // user … steal (guest is counted in user)
		var n int64
		fmt.Sscanf(v, "%d", &n)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// resetLogAt empties the request log of the registry at host.
func resetLogAt(host string) error {
	req, _ := http.NewRequest(http.MethodDelete, "http://"+host+"/_requests", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// requestsAt reads the request log of the registry at host.
func requestsAt(host string) ([]request, error) {
	resp, err := http.Get("http://" + host + "/_requests")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []request
	return out, json.NewDecoder(resp.Body).Decode(&out)
}
