// Pull (issue 27): ctrpush pull against the raw parallel GET (the floor),
// crane and the containerd daemon's own pull, on loopback and over links.

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/internal/delayproxy"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// pullTables measures cold pulls of 100 × 1 MiB, 8 × 32 MiB and a
// two-platform index (every platform) from the bench registry: on
// loopback and through the delay proxy at each round trip of rtts.
func (b *bench) pullTables(rtts []time.Duration) (string, error) {
	// Images of their own, which the daemon has never held: it shares a
	// blob any namespace has with every other (content_sharing_policy
	// "shared"), so a pull of the push tables' images would fetch
	// nothing. Pushed once, by the raw pusher.
	list := []*benchImage{
		{id: "100x1MiB", spec: testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 100, LayerSize: 1 * mib, Seed: 71}},
		{id: "8x32MiB", spec: testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 8, LayerSize: 32 * mib, Seed: 72}},
		{id: "index 2x4x32MiB", spec: testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 4, LayerSize: 32 * mib, Seed: 73}},
	}
	daemon := b.daemon
	b.daemon = nil // prepare imports into the daemon too
	for i, bi := range list {
		err := b.prepare(bi, 70+i)
		if err == nil {
			err = b.rawPushTo(bi, b.reg.Host, "pullsrc/"+b.idx(bi), 8)
		}
		if err != nil {
			b.daemon = daemon
			return "", fmt.Errorf("prepare %s for the pull tables: %w", bi.id, err)
		}
	}
	b.daemon = daemon
	var err error
	var w strings.Builder
	w.WriteString("## Pull (issue 27)\n\n")
	w.WriteString("Cold pulls of every platform of the image into a store that has none of it (a new embedded store, a new daemon namespace, a new crane directory each round); on loopback straight to the registry, over a link through `internal/delayproxy` (one-way delay, a 4 MiB window per connection). Median (min–max) of the rounds, interleaved; \"× floor\" is over the raw parallel GET's best concurrency in the same run (GETs only, bodies discarded: nothing written). `ctr images pull` also unpacks (it has no flag not to); `ctr content fetch` is the daemon's client-side fetch without unpacking. Peak RSS is the pulling process's own.\n\n")
	for _, rtt := range append([]time.Duration{0}, rtts...) {
		host := b.reg.Host
		var proxy *delayproxy.Proxy
		if rtt > 0 {
			proxy, err = delayproxy.Start(b.reg.Host, delayproxy.Config{Delay: rtt / 2, Window: 4 << 20})
			if err != nil {
				return "", err
			}
			host = proxy.Addr
		}
		for _, bi := range list {
			t, err := b.pullTable(rtt, proxy, host, bi)
			if err != nil {
				return "", err
			}
			w.WriteString(t)
		}
		if proxy != nil {
			_ = proxy.Close()
		}
	}
	return w.String(), nil
}

func (b *bench) pullTable(rtt time.Duration, proxy *delayproxy.Proxy, host string, bi *benchImage) (string, error) {
	ref := host + "/pullsrc/" + b.idx(bi) + ":1"
	multi := len(bi.img.Manifests) > 1
	label := "loopback"
	if rtt > 0 {
		label = fmt.Sprintf("wan %s", rtt)
	}
	ns := func(kind string, r int) string {
		return fmt.Sprintf("pull-%s-%d-%s-%d", kind, rtt.Milliseconds(), b.idx(bi), r)
	}
	ctrpushArgs := []string{"pull"}
	if multi {
		ctrpushArgs = append(ctrpushArgs, "--all-platforms")
	}
	scens := []scen{{"ctrpush pull (embedded store)", func(r int) (sample, error) {
		root := filepath.Join(b.work, ns("store", r))
		defer os.RemoveAll(root)
		return b.measureRun(b.ctrpush, append([]string{"--root", root}, append(ctrpushArgs, ref)...)...)
	}}}
	if b.baseline != "" {
		scens = append(scens, scen{"ctrpush at " + b.baselineRev + " pull (embedded store)", func(r int) (sample, error) {
			root := filepath.Join(b.work, ns("base", r))
			defer os.RemoveAll(root)
			return b.measureRun(b.baseline, append([]string{"--root", root}, append(ctrpushArgs, ref)...)...)
		}})
	}
	if b.daemon != nil {
		scens = append(scens, scen{"ctrpush pull (containerd daemon)", func(r int) (sample, error) {
			n := ns("ctrpush", r)
			defer b.dropNamespace(n)
			return b.measureRun(b.ctrpush, append([]string{"--address", b.daemon.Address, "--namespace", n}, append(ctrpushArgs, ref)...)...)
		}})
	}
	for _, n := range []int{8, 32, 64} {
		scens = append(scens, scen{fmt.Sprintf("raw GET, %d in flight", n), func(r int) (sample, error) {
			return b.measure(func() error { return b.rawPull(bi, host, "pullsrc/"+b.idx(bi), n) })
		}})
	}
	if b.crane != "" {
		scens = append(scens, scen{"crane pull --format oci", func(r int) (sample, error) {
			dir := filepath.Join(b.work, ns("crane", r))
			defer os.RemoveAll(dir)
			return b.measureRun(b.crane, "pull", "--insecure", "--format", "oci", ref, dir)
		}})
	}
	if b.daemon != nil {
		platforms := []string{}
		if multi {
			platforms = []string{"--all-platforms"}
		}
		scens = append(scens, scen{"ctr images pull (daemon's transfer service; unpacks)", func(r int) (sample, error) {
			n := ns("ctr", r)
			defer b.dropNamespace(n)
			return b.measureRun(b.daemon.CtrPath(), append(append([]string{"--address", b.daemon.Address, "--namespace", n, "images", "pull", "--plain-http"}, platforms...), ref)...)
		}}, scen{"ctr images pull --local (unpacks)", func(r int) (sample, error) {
			n := ns("ctrlocal", r)
			defer b.dropNamespace(n)
			return b.measureRun(b.daemon.CtrPath(), append(append([]string{"--address", b.daemon.Address, "--namespace", n, "images", "pull", "--local", "--plain-http"}, platforms...), ref)...)
		}}, scen{"ctr content fetch (no unpack)", func(r int) (sample, error) {
			n := ns("fetch", r)
			defer b.dropNamespace(n)
			return b.measureRun(b.daemon.CtrPath(), append(append([]string{"--address", b.daemon.Address, "--namespace", n, "content", "fetch", "--plain-http"}, platforms...), ref)...)
		}})
	}
	scens = slices.DeleteFunc(scens, func(sc scen) bool { return !b.rowFilter.MatchString(sc.name) })
	rows := make([]*row, len(scens))
	for i, sc := range scens {
		rows[i] = &row{image: bi.id, name: sc.name}
	}
	for r := 0; r < b.runs; r++ {
		for i, sc := range scens {
			var conns int64
			if proxy != nil {
				conns = proxy.Connections()
			}
			smp, err := sc.run(r)
			if err != nil {
				return "", fmt.Errorf("pull %s %s %s round %d: %w", label, bi.id, sc.name, r, err)
			}
			if proxy != nil {
				smp.conns = proxy.Connections() - conns
			}
			rows[i].samples = append(rows[i].samples, smp)
			fmt.Fprintf(b.log, "pull %s %-16s %-52s round %d: %6.3fs %4d req %3d conns\n", label, bi.id, sc.name, r, smp.dur.Seconds(), smp.requests, smp.conns)
		}
	}
	floor := time.Duration(0)
	for _, r := range rows {
		if strings.HasPrefix(r.name, "raw GET") {
			if m := median(r.durations()); floor == 0 || m < floor {
				floor = m
			}
		}
	}
	var w strings.Builder
	where := "loopback"
	if rtt > 0 {
		where = fmt.Sprintf("%s round trip", rtt)
	}
	fmt.Fprintf(&w, "### Pull, %s, %s (%.1f MiB of blobs)\n\n| scenario | median s | min–max s | × floor | requests | connections | peak RSS MiB |\n|---|---|---|---|---|---|---|\n", where, bi.id, float64(bi.bytes)/mib)
	for _, r := range rows {
		d := r.durations()
		mid := r.samples[len(r.samples)/2]
		conns, rss := "–", "–"
		if proxy != nil {
			conns = fmt.Sprint(mid.conns)
		}
		if m := r.medianOf(func(s sample) int64 { return s.rssKB }); m > 0 {
			rss = fmt.Sprint(m / 1024)
		}
		fmt.Fprintf(&w, "| %s | %.3f | %.3f–%.3f | %.2f | %d | %s | %s |\n", r.name, median(d).Seconds(), slices.Min(d).Seconds(), slices.Max(d).Seconds(),
			float64(median(d))/float64(floor), mid.requests, conns, rss)
	}
	if p, c := findRow(rows, "ctrpush pull (embedded"), findRow(rows, "crane pull"); p != nil && c != nil {
		fmt.Fprintf(&w, "\nctrpush pull (embedded) ÷ crane pull: %.2f.\n", float64(median(p.durations()))/float64(median(c.durations())))
	}
	w.WriteString("\n")
	return w.String(), nil
}

// rawPull is the floor of a pull: the manifests a level at a time (the
// tag, then what an index lists), then every config and layer, n GETs in
// flight, bodies discarded. It starts without connections, as every
// pulling process does.
func (b *bench) rawPull(bi *benchImage, host, repo string, n int) error {
	plain.c.CloseIdleConnections()
	base := "http://" + host + "/v2/" + repo
	get := func(path, accept string) error {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			return err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := plain.c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return nil
	}
	accept := strings.Join([]string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, images.MediaTypeDockerSchema2ManifestList, images.MediaTypeDockerSchema2Manifest}, ", ")
	if err := get("/manifests/1", accept); err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(n)
	if len(bi.img.Manifests) > 1 {
		for _, m := range bi.img.Manifests {
			g.Go(func() error { return get("/manifests/"+m.Descriptor.Digest.String(), accept) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	for _, d := range b.blobs(bi) {
		g.Go(func() error { return get("/blobs/"+d.Digest.String(), "") })
	}
	return g.Wait()
}

// dropNamespace removes everything a pull put in namespace ns of the
// daemon (images, then content and snapshots, collected at once) and the
// namespace itself, so the next round starts cold and the disk does not
// fill.
func (b *bench) dropNamespace(ns string) {
	c, err := client.New(b.daemon.Address, client.WithDefaultNamespace(ns))
	if err != nil {
		fmt.Fprintf(b.log, "drop namespace %s: %v\n", ns, err)
		return
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	imgs, err := c.ImageService().List(ctx)
	if err == nil {
		for i, img := range imgs {
			var opts []images.DeleteOpt
			if i == len(imgs)-1 {
				opts = append(opts, images.SynchronousDelete())
			}
			_ = c.ImageService().Delete(ctx, img.Name, opts...)
		}
	}
	// What no image holds (a fetch's content, without an image record
	// in some versions) goes too.
	_ = c.ContentStore().Walk(ctx, func(info content.Info) error {
		return c.ContentStore().Delete(ctx, info.Digest)
	})
	// Collected now: the daemon shares a blob whose file is still on
	// disk with any namespace (content_sharing_policy "shared"), so a
	// later row would find it without fetching.
	if l, err := c.LeasesService().Create(ctx, leases.WithRandomID()); err == nil {
		_ = c.LeasesService().Delete(ctx, l, leases.SynchronousDelete)
	}
	_ = c.NamespaceService().Delete(ctx, ns)
}
