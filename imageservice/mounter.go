package imageservice

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
)

// blobClient asks one destination repository about blobs and mounts them
// from other repositories of its registry, through the same registry hosts
// (endpoint, TLS, authorizer) containerd's pusher uses. containerd's
// pusher tries one mount candidate and fails the whole push when a mount is
// answered 403; ctrpush does its mounts here and hands containerd only
// plain uploads.
type blobClient struct {
	host    docker.RegistryHost
	refspec reference.Spec
	path    string // repository path in the registry, "team/app"
	// authMu serialises calls into containerd's docker authorizer: its
	// token cache reads a result's expiry while another goroutine writes
	// it (a data race the race detector reports with concurrent uploads).
	authMu sync.Mutex
}

func (c *blobClient) authorize(ctx context.Context, req *http.Request) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	return c.host.Authorizer.Authorize(ctx, req)
}

func (c *blobClient) addResponses(ctx context.Context, resp *http.Response) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	return c.host.Authorizer.AddResponses(ctx, []*http.Response{resp})
}

func newBlobClient(hosts docker.RegistryHosts, domain, path string) (*blobClient, error) {
	hs, err := hosts(domain)
	if err != nil {
		return nil, fmt.Errorf("registry hosts for %s: %w", domain, err)
	}
	for _, h := range hs {
		if h.Capabilities.Has(docker.HostCapabilityPush) {
			spec, err := reference.Parse(domain + "/" + path)
			if err != nil {
				return nil, err
			}
			return &blobClient{host: h, refspec: spec, path: path}, nil
		}
	}
	return nil, fmt.Errorf("no push endpoint configured for %s", domain)
}

func (c *blobClient) url(p string, q url.Values) string {
	u := url.URL{Scheme: c.host.Scheme, Host: c.host.Host, Path: c.host.Path + "/" + c.path + p}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// do sends a bodiless, authorized request (see send).
func (c *blobClient) do(ctx context.Context, method, u string) (*http.Response, error) {
	return c.send(ctx, request{method: method, url: u, auth: true})
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// exists asks whether the destination repository has blob d.
func (c *blobClient) exists(ctx context.Context, d digest.Digest) (bool, error) {
	return c.existsIn(ctx, c.path, d)
}

// existsIn asks whether repository repo of the same registry has blob d.
func (c *blobClient) existsIn(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	ctx, err := docker.ContextWithRepositoryScope(ctx, c.refspec, true)
	if err != nil {
		return false, err
	}
	if repo != c.path {
		ctx = docker.ContextWithAppendPullRepositoryScope(ctx, repo)
	}
	u := url.URL{Scheme: c.host.Scheme, Host: c.host.Host, Path: c.host.Path + "/" + repo + "/blobs/" + d.String()}
	resp, err := c.do(ctx, http.MethodHead, u.String())
	if err != nil {
		return false, err
	}
	drain(resp)
	return resp.StatusCode == http.StatusOK, nil
}

// manifestDigest returns the digest the destination has under ref (a tag
// or digest), or "" when it has none.
func (c *blobClient) manifestDigest(ctx context.Context, ref string, mediaType string) (digest.Digest, error) {
	ctx, err := docker.ContextWithRepositoryScope(ctx, c.refspec, true)
	if err != nil {
		return "", err
	}
	req := c.url("/manifests/"+ref, nil)
	resp, err := c.send(ctx, request{method: http.MethodHead, url: req, accept: mediaType + ", */*", auth: true})
	if err != nil {
		return "", err
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", nil
	}
	return digest.Digest(resp.Header.Get("Docker-Content-Digest")), nil
}

// repositoryUnknown says whether the registry states that the destination
// repository does not exist (tags/list answers 404 NAME_UNKNOWN). Any
// other answer, or none, means it may exist.
func (c *blobClient) repositoryUnknown(ctx context.Context) bool {
	ctx, err := docker.ContextWithRepositoryScope(ctx, c.refspec, true)
	if err != nil {
		return false
	}
	resp, err := c.do(ctx, http.MethodGet, c.url("/tags/list", url.Values{"n": {"1"}}))
	if err != nil {
		return false
	}
	defer drain(resp)
	return resp.StatusCode == http.StatusNotFound && registryError("", resp).Code == "NAME_UNKNOWN"
}

// mountOutcome is how a registry answered a mount request.
type mountOutcome int

const (
	mounted      mountOutcome = iota // 201
	notThere                         // 202: the source lacks the blob; an upload session was opened (and cancelled)
	notPermitted                     // 401, 403
	mountFailed                      // anything else
)

// mount asks the registry to mount d from repository from.
func (c *blobClient) mount(ctx context.Context, d digest.Digest, from string) (mountOutcome, error) {
	ctx, err := docker.ContextWithRepositoryScope(ctx, c.refspec, true)
	if err != nil {
		return mountFailed, err
	}
	ctx = docker.ContextWithAppendPullRepositoryScope(ctx, from)
	resp, err := c.do(ctx, http.MethodPost, c.url("/blobs/uploads/", url.Values{"mount": {d.String()}, "from": {from}}))
	if err != nil {
		return mountFailed, err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		return mounted, nil
	case http.StatusAccepted:
		c.cancelUpload(ctx, resp.Header.Get("Location"))
		return notThere, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return notPermitted, nil
	}
	log.G(ctx).WithField("status", resp.Status).Debug("mount request answered")
	return mountFailed, nil
}

// cancelUpload deletes an upload session the registry opened in answer to
// a mount it could not do (best effort).
func (c *blobClient) cancelUpload(ctx context.Context, location string) {
	if location == "" {
		return
	}
	u, err := url.Parse(location)
	if err != nil {
		return
	}
	if !u.IsAbs() {
		u.Scheme, u.Host = c.host.Scheme, c.host.Host
	}
	if !strings.EqualFold(u.Host, c.host.Host) {
		return // never send our credentials elsewhere
	}
	if resp, err := c.do(ctx, http.MethodDelete, u.String()); err == nil {
		drain(resp)
	}
}
