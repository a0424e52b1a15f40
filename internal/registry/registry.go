package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// Repository is one repository of one registry, reached through one
// endpoint of its registry hosts.
type Repository struct {
	// Registry is the registry's name as in references ("host[:port]").
	Registry string
	// Path is the repository's path in the registry ("team/app").
	Path string

	host    docker.RegistryHost
	client  *http.Client
	refspec reference.Spec
	retry   RetryPolicy
	// chunk is the PATCH chunk size this registry was found to need (a
	// body refused as too large), for the rest of the push; 0: none.
	chunk atomic.Int64
	// singlePOST is what the registry did with a blob in the POST that
	// opens an upload (single-request upload): singlePOSTUnknown until a
	// small blob probes it.
	singlePOST atomic.Int32
	// noPatch: the registry refused a PATCH (405 or 501: it takes whole
	// uploads only, as Google Artifact Registry wants), so chunks are not
	// tried again in this push.
	noPatch atomic.Bool
	// hosts made host; asked again for a fresh authorizer when a token
	// that worked is refused (renewAuthorizer).
	hosts docker.RegistryHosts
	// authorized: a request was answered after being authorized, so a
	// later 401 means the credentials went stale, not that they are wrong.
	authorized atomic.Bool
	// authMu serialises calls into containerd's docker authorizer: its
	// token cache reads a result's expiry while another goroutine writes
	// it (a data race the race detector reports with concurrent uploads).
	authMu sync.Mutex
	// reached: the registry answered a request, so a connection refused
	// later is worth retrying (a restart); until then it fails at once.
	reached atomic.Bool
	// referrersAPI is what the registry showed of the OCI referrers API:
	// referrersUnknown until a manifest PUT answers OCI-Subject or the API
	// is asked (referrers.go).
	referrersAPI atomic.Int32
}

// Purpose is what a Repository is opened for; it picks the endpoint.
type Purpose int

// Purposes.
const (
	// ForPush uses the first endpoint with the push capability (a mirror
	// never is one unless hosts.toml says so).
	ForPush Purpose = iota
	// ForPull uses the first endpoint with the pull and resolve
	// capabilities.
	ForPull
)

// NewRepository opens repository path of registry through hosts, retrying
// by policy.
func NewRepository(hosts docker.RegistryHosts, registry, path string, purpose Purpose, policy RetryPolicy) (*Repository, error) {
	hs, err := hosts(registry)
	if err != nil {
		return nil, fmt.Errorf("registry hosts for %s: %w", registry, err)
	}
	want := docker.HostCapabilityPush
	if purpose == ForPull {
		want = docker.HostCapabilityPull | docker.HostCapabilityResolve
	}
	for _, h := range hs {
		if !h.Capabilities.Has(want) {
			continue
		}
		spec, err := reference.Parse(registry + "/" + path)
		if err != nil {
			return nil, fmt.Errorf("repository %s/%s: %w", registry, path, errdefs.ErrInvalidArgument)
		}
		r := &Repository{Registry: registry, Path: path, host: h, refspec: spec, retry: policy, hosts: hosts}
		r.client = r.newClient()
		return r, nil
	}
	what := "push"
	if purpose == ForPull {
		what = "pull"
	}
	return nil, fmt.Errorf("no %s endpoint configured for %s: %w", what, registry, errdefs.ErrNotFound)
}

// CheckLogin asks registry ("host[:port]") whether the credentials hosts
// carries are good (GET /v2/ on its push endpoint, else the last
// endpoint: the registry itself after any mirrors). A refusal wraps
// errdefs.ErrUnauthenticated; the error never contains the secret.
func CheckLogin(ctx context.Context, hosts docker.RegistryHosts, registry string) error {
	hs, err := hosts(registry)
	if err != nil {
		return err
	}
	if len(hs) == 0 {
		return fmt.Errorf("no endpoint configured for %s: %w", registry, errdefs.ErrNotFound)
	}
	h := hs[len(hs)-1]
	for _, cand := range hs {
		if cand.Capabilities.Has(docker.HostCapabilityPush) {
			h = cand
			break
		}
	}
	r := &Repository{Registry: registry, host: h}
	r.client = r.newClient()
	return r.CheckLogin(ctx)
}

// Name is "registry/path".
func (r *Repository) Name() string { return r.Registry + "/" + r.Path }

// newClient is the host's client with redirects that keep credentials on
// the registry host: a redirect elsewhere (signed storage URL) carries
// neither Authorization nor the host's configured headers.
func (r *Repository) newClient() *http.Client {
	c := http.Client{}
	if r.host.Client != nil {
		c = *r.host.Client
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from := via[len(via)-1]
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return &RedirectError{Method: from.Method, From: RedactURL(from.URL.String()), To: RedactURL(req.URL.String()),
				Reason: fmt.Sprintf("the scheme %q is not followed (http and https are)", req.URL.Scheme)}
		}
		if len(via) >= 10 {
			return &RedirectError{Method: from.Method, From: RedactURL(via[0].URL.String()), To: RedactURL(req.URL.String()),
				Reason: "stopped after 10 redirects"}
		}
		if !r.onHost(req.URL) {
			req.Header.Del("Authorization")
			for k := range r.host.Header {
				req.Header.Del(k)
			}
		}
		return nil
	}
	return &c
}

// onHost reports whether u is on the registry host (same scheme, host and
// port): only there do credentials and configured headers go.
func (r *Repository) onHost(u *url.URL) bool {
	return strings.EqualFold(u.Host, r.host.Host) && u.Scheme == r.host.Scheme
}

// url is the URL of p under this repository ("/blobs/uploads/").
func (r *Repository) url(p string, q url.Values) string {
	return r.urlIn(r.Path, p, q)
}

// urlIn is the URL of p under repository repo of the same registry.
func (r *Repository) urlIn(repo, p string, q url.Values) string {
	u := url.URL{Scheme: r.host.Scheme, Host: r.host.Host, Path: r.host.Path + "/" + repo + p}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// location resolves a Location header against the registry host.
func (r *Repository) location(loc string) (*url.URL, error) {
	if loc == "" {
		return nil, errors.New("the registry gave no upload location")
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("bad upload location: %w", err)
	}
	if !u.IsAbs() {
		base := url.URL{Scheme: r.host.Scheme, Host: r.host.Host}
		u = base.ResolveReference(u)
	}
	return u, nil
}

// request is one HTTP request to the registry or an upload location.
type request struct {
	method, url string
	header      http.Header
	// body makes the body anew for each attempt (nil: none).
	body func() (io.Reader, error)
	size int64
	// push: the request needs push scope (else pull).
	push bool
	// from: also pull scope on this repository (a mount source).
	from string
	// commit: the registry answers once it has stored or moved blob bytes
	// (a blob PUT or PATCH, a single-request POST, a mount), which can
	// take minutes for a large blob: the wait for that answer is bounded
	// by the transport's ResponseHeaderTimeout, not the idle bound.
	commit bool
}

// send does req: on the registry host with its configured headers and,
// authorized, answering one auth challenge (the body is made anew); on
// another host (an upload location elsewhere) with neither. An answer is
// returned whatever its status; a request that got none is a
// *TransportError.
func (r *Repository) send(ctx context.Context, op string, req request) (*http.Response, error) {
	u, err := url.Parse(req.url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	onHost := r.onHost(u)
	if onHost && r.Path != "" {
		if ctx, err = docker.ContextWithRepositoryScope(ctx, r.refspec, req.push); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if req.from != "" {
			ctx = docker.ContextWithAppendPullRepositoryScope(ctx, req.from)
		}
	}
	// challenged: a 401 challenge was answered for this request; renewed:
	// the authorizer was replaced after credentials that worked were
	// refused. Each happens once, so a request is sent at most four times.
	challenged, renewed := false, false
	for {
		var body io.Reader
		if req.body != nil {
			b, err := req.body()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op, &BodyError{err})
			}
			body = b
		}
		// Every attempt is watched: no progress for the idle bound
		// cancels it (an *IdleError, transient).
		wd, wctx := watch(ctx, r.retry.idle(), req.method, req.url)
		hreq, err := http.NewRequestWithContext(wctx, req.method, req.url, body)
		if err != nil {
			wd.stop()
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if req.body != nil && req.size > 0 {
			hreq.ContentLength = req.size
			hreq.Body = io.NopCloser(&watchedBody{r: body, w: wd, left: req.size, commit: req.commit})
			if getBody := hreq.GetBody; getBody != nil {
				hreq.GetBody = func() (io.ReadCloser, error) {
					rc, err := getBody()
					if err != nil {
						return nil, err
					}
					return struct {
						io.Reader
						io.Closer
					}{&watchedBody{r: rc, w: wd, left: req.size, commit: req.commit}, rc}, nil
				}
			}
		} else {
			if req.body != nil {
				hreq.ContentLength = 0
				hreq.Body = http.NoBody
			}
			if req.commit {
				wd.setStage(stageCommitting)
			} else {
				wd.setStage(stageWaiting)
			}
		}
		if onHost {
			for k, v := range r.host.Header {
				hreq.Header[k] = v
			}
		}
		for k, v := range req.header {
			hreq.Header[k] = v
		}
		if onHost && r.hasAuthorizer() {
			if err := r.authorize(ctx, hreq); err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
		}
		start := time.Now()
		resp, err := r.client.Do(hreq)
		if err != nil {
			wd.stop()
			var ue *url.Error
			if errors.As(err, &ue) {
				ue.URL = RedactURL(ue.URL) // upload URLs carry signed state
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %w", op, context.Cause(ctx))
			}
			if ie := wd.err(); ie != nil {
				return nil, &TransportError{Op: op, Err: ie}
			}
			return nil, &TransportError{Op: op, Err: err}
		}
		wd.setStage(stageReading)
		wd.paused.Store(true) // until the answer is read
		resp.Body = &watchedAnswer{ReadCloser: resp.Body, w: wd, op: op}
		r.reached.Store(true)
		log.G(ctx).WithFields(log.Fields{"method": req.method, "url": RedactURL(req.url), "status": resp.StatusCode,
			"duration": time.Since(start).Round(time.Millisecond)}).Debug("registry request")
		if resp.StatusCode == http.StatusUnauthorized && onHost && r.hasAuthorizer() {
			switch {
			case !challenged:
				challenged = true
				aerr := r.addResponses(ctx, resp)
				if aerr == nil {
					drain(resp)
					continue
				}
				var ce *CredentialsError
				if errors.As(aerr, &ce) {
					// Say why there were no credentials, not just "401".
					drain(resp)
					return nil, fmt.Errorf("%s: %w", op, aerr)
				}
			case !renewed && r.authorized.Load():
				// The challenge was answered and the registry still
				// refuses credentials that worked before: the token
				// expired without saying so (no error="invalid_token" in
				// the challenge, so the authorizer kept it). Start over
				// with a fresh authorizer, once.
				if r.renewAuthorizer() == nil {
					log.G(ctx).WithField("registry", r.Registry).Debug("credentials refused after working: fetching new ones")
					renewed, challenged = true, false
					drain(resp)
					continue
				}
			}
		} else if resp.StatusCode < 300 && onHost && hreq.Header.Get("Authorization") != "" {
			r.authorized.Store(true)
		}
		return resp, nil
	}
}

func (r *Repository) hasAuthorizer() bool {
	r.authMu.Lock()
	defer r.authMu.Unlock()
	return r.host.Authorizer != nil
}

// renewAuthorizer replaces the authorizer (and its cached tokens) with a
// fresh one from the hosts configuration.
func (r *Repository) renewAuthorizer() error {
	if r.hosts == nil {
		return errors.New("no hosts configuration")
	}
	hs, err := r.hosts(r.Registry)
	if err != nil {
		return err
	}
	r.authMu.Lock()
	defer r.authMu.Unlock()
	for _, h := range hs {
		if h.Host == r.host.Host && h.Authorizer != nil {
			r.host.Authorizer = h.Authorizer
			return nil
		}
	}
	return errors.New("no authorizer for the host")
}

func (r *Repository) authorize(ctx context.Context, req *http.Request) error {
	r.authMu.Lock()
	defer r.authMu.Unlock()
	return r.host.Authorizer.Authorize(ctx, req)
}

func (r *Repository) addResponses(ctx context.Context, resp *http.Response) error {
	r.authMu.Lock()
	defer r.authMu.Unlock()
	return r.host.Authorizer.AddResponses(ctx, []*http.Response{resp})
}

// drain reads what is left of a small answer and closes it, so the
// connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// retrying runs fn under the repository's retry policy. A registry that
// could not be connected to before it ever answered is not retried: it is
// down or the address is wrong, and saying so at once beats saying it
// after the backoffs (a push finds out by its first request too).
func (r *Repository) retrying(ctx context.Context, onRetry func(time.Duration, error), fn func(context.Context) error) error {
	return r.retry.Do(ctx, func(ctx context.Context) error {
		err := fn(ctx)
		if err != nil && !r.reached.Load() && Unreachable(err) {
			return &finalError{err}
		}
		return err
	}, onRetry)
}
