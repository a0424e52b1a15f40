// Over a link: the delay-proxy tables at each round trip of -rtts, the TLS
// table (HTTP/1.1 or HTTP/2), and the interleaved rounds they share.

package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/delayproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
)

// wan measures pushes through a delay proxy standing for a real link: a
// one-way delay, a 4 MiB window per connection. Rows: ctrpush as it is,
// the raw pusher at several concurrencies (the floor), crane, ctr.
func (b *bench) wan(imgs []*benchImage) (string, error) {
	small, err := b.smallImage()
	if err != nil {
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
					return b.measureCrane(bi, proxy.Addr+"/"+repo("crane", r)+":1")
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
