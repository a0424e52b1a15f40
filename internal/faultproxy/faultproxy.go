// Package faultproxy is a reverse proxy on 127.0.0.1 in front of a real
// registry that injects faults chosen per request: an HTTP status instead
// of forwarding, a delay, or a reset connection. Tests use it to check
// ctrpush rides out what registries really do.
package faultproxy

import (
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
	Status int           // answer this status (with an OCI error body) instead of forwarding
	Delay  time.Duration // wait this long first
	Reset  bool          // close the connection without answering
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
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &Proxy{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		rule, limiter := p.rule, p.limiter
		p.mu.Unlock()
		if limiter != nil && r.Body != nil {
			r.Body = throttledBody{ReadCloser: r.Body, l: limiter}
		}
		var f Fault
		if rule != nil {
			f = rule(r)
		}
		if f != (Fault{}) {
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
		switch {
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
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			_, _ = w.Write([]byte(`{"errors":[{"code":"DENIED","message":"injected by faultproxy"}]}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	// Small receive buffers, so a throttled body is not swallowed by the
	// kernel at once and the client's byte counts follow the throttle.
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	p.Host = srv.Listener.Addr().String()
	return p
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
