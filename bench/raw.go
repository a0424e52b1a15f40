// The registry, spoken to directly: the raw pusher (the floor every push
// is measured against) and the bare mount loop.

package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
)

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
