// Uploads that break: pushes through a fault proxy that drops, cuts or
// refuses them.

package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

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
