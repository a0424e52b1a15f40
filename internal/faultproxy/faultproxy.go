// Package faultproxy is a reverse proxy on 127.0.0.1 in front of a real
// registry that injects faults chosen per request: an HTTP status instead
// of forwarding, a delay, or a reset connection. Tests use it to check
// ctrpush rides out what registries really do.
package faultproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Fault is what to do with one request. The zero Fault forwards it.
type Fault struct {
	Status int // answer this status (with an OCI error body) instead of forwarding
	// Early answers Status without reading the request body first, as
	// nginx does for a body over its limit (the client may see the answer
	// while still sending, or a reset).
	Early  bool
	Code   string        // the error code in that body (default DENIED)
	Header http.Header   // extra response headers with Status (e.g. Retry-After)
	Delay  time.Duration // wait this long first
	// DelayAnswer forwards the request, then holds the registry's answer
	// this long before sending it (a registry slow to commit a blob).
	DelayAnswer time.Duration
	Reset       bool  // close the connection without answering
	ResetAfter  int64 // read this many body bytes, then close the connection
	// CutAfter forwards this many body bytes to the registry, then ends
	// the body there (the registry sees a client that went away).
	CutAfter int64
	// StallAfter forwards the registry's answer, its headers and this
	// many bytes of its body, then sends nothing more until the client
	// goes away (a registry that stalls mid-body); Stalls counts them.
	StallAfter int64
}

// Rule picks the fault for a request; nil forwards every request.
type Rule func(r *http.Request) Fault

// Proxy is a running fault proxy.
type Proxy struct {
	// Host is "127.0.0.1:PORT".
	Host string

	mu       sync.Mutex
	rule     Rule
	injected int
	limiter  *rateLimiter

	bodyBytes int64          // request body bytes read from clients
	withAuth  int            // requests that came with an Authorization header
	headers   map[string]int // requests that came with each header (canonical name)
	requests  int
	stalls    int // answers held by StallAfter until the client left

	// set with SetRewrite and SetInject
	rewrite     func(*http.Response)
	inject      http.Header
	inFlight    int
	maxInFlight int
	tracked     func(*http.Request) bool
}

// Track counts, from now on, the requests matching f that are in flight at
// once; MaxInFlight reports the most seen.
func (p *Proxy) Track(f func(*http.Request) bool) {
	p.mu.Lock()
	p.tracked, p.inFlight, p.maxInFlight = f, 0, 0
	p.mu.Unlock()
}

// MaxInFlight is the most tracked requests seen in flight at once.
func (p *Proxy) MaxInFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxInFlight
}

// SetRewrite changes forwarded responses with fn (e.g. a Location that
// points elsewhere).
func (p *Proxy) SetRewrite(fn func(*http.Response)) {
	p.mu.Lock()
	p.rewrite = fn
	p.mu.Unlock()
}

// SetInject adds headers to forwarded requests (e.g. the credentials a
// signed upload URL would carry).
func (p *Proxy) SetInject(h http.Header) {
	p.mu.Lock()
	p.inject = h
	p.mu.Unlock()
}

// Authorized counts requests that came with an Authorization header, and
// all requests.
func (p *Proxy) Authorized() (withAuth, all int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.withAuth, p.requests
}

// WithHeader counts the requests that came with header name.
func (p *Proxy) WithHeader(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.headers[http.CanonicalHeaderKey(name)]
}

// BodyBytes counts the request body bytes clients sent through the proxy.
func (p *Proxy) BodyBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bodyBytes
}

type countedBody struct {
	io.ReadCloser
	p *Proxy
}

func (b countedBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	b.p.mu.Lock()
	b.p.bodyBytes += int64(n)
	b.p.mu.Unlock()
	return n, err
}

// SetRate throttles request bodies through the proxy to bytesPerSec in
// total (0: unlimited), to watch uploads progress.
func (p *Proxy) SetRate(bytesPerSec int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytesPerSec <= 0 {
		p.limiter = nil
		return
	}
	p.limiter = &rateLimiter{rate: bytesPerSec}
}

// rateLimiter lets bytes through at rate per second, shared by all
// readers, with no credit saved up while idle.
type rateLimiter struct {
	mu   sync.Mutex
	rate int64
	next time.Time
}

func (l *rateLimiter) wait(n int) {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / float64(l.rate) * float64(time.Second)))
	due := l.next
	l.mu.Unlock()
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

type throttledBody struct {
	io.ReadCloser
	l *rateLimiter
}

func (b throttledBody) Read(p []byte) (int, error) {
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.l.wait(n)
	}
	return n, err
}

// Start proxies to target ("127.0.0.1:PORT") until the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, stop := New(target)
	t.Cleanup(stop)
	return p
}

// New proxies to target ("127.0.0.1:PORT") until stop is called (for
// callers without a testing.TB: the benchmarks).
func New(target string) (p *Proxy, stop func()) {
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p = &Proxy{}
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		rewrite := p.rewrite
		p.mu.Unlock()
		if rewrite != nil {
			rewrite(resp)
		}
		return nil
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests++
		if r.Header.Get("Authorization") != "" {
			p.withAuth++
		}
		if p.headers == nil {
			p.headers = map[string]int{}
		}
		for k := range r.Header {
			p.headers[k]++
		}
		for k, v := range p.inject {
			r.Header[k] = v
		}
		rule, limiter := p.rule, p.limiter
		tracked := p.tracked != nil && p.tracked(r)
		if tracked {
			p.inFlight++
			if p.inFlight > p.maxInFlight {
				p.maxInFlight = p.inFlight
			}
		}
		p.mu.Unlock()
		if tracked {
			defer func() {
				p.mu.Lock()
				p.inFlight--
				p.mu.Unlock()
			}()
		}
		if r.Body != nil {
			r.Body = countedBody{ReadCloser: r.Body, p: p}
		}
		if limiter != nil && r.Body != nil {
			r.Body = throttledBody{ReadCloser: r.Body, l: limiter}
		}
		var f Fault
		if rule != nil {
			f = rule(r)
		}
		if f.Status != 0 || f.Delay > 0 || f.DelayAnswer > 0 || f.Reset || f.ResetAfter > 0 || f.CutAfter > 0 || f.StallAfter > 0 {
			p.mu.Lock()
			p.injected++
			p.mu.Unlock()
		}
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if f.CutAfter > 0 && r.Body != nil {
			// The registry gets the first bytes, then a body that ends.
			r.Body = &cutBody{ReadCloser: r.Body, left: f.CutAfter}
		}
		switch {
		case f.ResetAfter > 0:
			_, _ = io.CopyN(io.Discard, r.Body, f.ResetAfter)
			fallthrough
		case f.Reset:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					if tc, ok := c.(*net.TCPConn); ok {
						_ = tc.SetLinger(0)
					}
					_ = c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case f.Status != 0:
			if r.Body != nil && !f.Early {
				_, _ = io.Copy(io.Discard, r.Body)
			}
			if f.Early {
				w.Header().Set("Connection", "close")
			}
			for k, v := range f.Header {
				w.Header()[k] = v
			}
			code := f.Code
			if code == "" {
				code = "DENIED"
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			_, _ = fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected by faultproxy"}]}`, code)
			return
		}
		if f.DelayAnswer > 0 {
			w = &slowAnswer{ResponseWriter: w, delay: f.DelayAnswer, ctx: r.Context()}
		}
		if f.StallAfter > 0 {
			w = &stalledAnswer{ResponseWriter: w, left: f.StallAfter, ctx: r.Context(), stalled: func() {
				p.mu.Lock()
				p.stalls++
				p.mu.Unlock()
			}}
		}
		rp.ServeHTTP(w, r)
	}))
	// Small receive buffers, so a throttled body is not swallowed by the
	// kernel at once and the client's byte counts follow the throttle.
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	p.Host = srv.Listener.Addr().String()
	return p, srv.Close
}

// cutBody ends a request body early, as a dropped client connection does.
type cutBody struct {
	io.ReadCloser
	left int64
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.ReadCloser.Read(b)
	c.left -= int64(n)
	return n, err
}

type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
	}
	return c, err
}

// SetRule replaces the rule.
func (p *Proxy) SetRule(r Rule) {
	p.mu.Lock()
	p.rule = r
	p.mu.Unlock()
}

// Injected counts the faults injected so far.
func (p *Proxy) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// slowAnswer holds the response header back for delay (the request body
// has been read by then: the reverse proxy answers after the registry did).
type slowAnswer struct {
	http.ResponseWriter
	delay time.Duration
	ctx   context.Context
	held  bool
}

func (s *slowAnswer) WriteHeader(code int) {
	if !s.held {
		s.held = true
		select {
		case <-time.After(s.delay):
		case <-s.ctx.Done():
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *slowAnswer) Write(b []byte) (int, error) {
	if !s.held {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets the reverse proxy flush through the wrapper.
func (s *slowAnswer) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Stalls counts the answers StallAfter held until the client went away.
func (p *Proxy) Stalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalls
}

// stalledAnswer passes on the first left bytes of an answer, then blocks
// until the client goes away.
type stalledAnswer struct {
	http.ResponseWriter
	left    int64
	ctx     context.Context
	stalled func()
	done    bool
}

func (s *stalledAnswer) Write(b []byte) (int, error) {
	if s.done {
		return 0, http.ErrAbortHandler
	}
	if int64(len(b)) <= s.left {
		s.left -= int64(len(b))
		return s.ResponseWriter.Write(b)
	}
	n, _ := s.ResponseWriter.Write(b[:s.left])
	s.left = 0
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	s.done = true
	<-s.ctx.Done()
	s.stalled()
	return n, http.ErrAbortHandler
}

// Unwrap lets the reverse proxy flush through the wrapper.
func (s *stalledAnswer) Unwrap() http.ResponseWriter { return s.ResponseWriter }
