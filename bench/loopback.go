// On loopback: each image's scenarios (ctrpush, the raw limit, the bare
// mount loop, peers and the daemon rows), measured in interleaved rounds,
// and the upload concurrency sweep.

package main

import (
	"fmt"
	"slices"

	"golang.org/x/sync/errgroup"
)

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
			return b.measureCrane(bi, fmt.Sprintf("%s/crane/%s-%d:1", host, b.idx(bi), r))
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
