package registry

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Connections dialed ahead of need. A push knows, while its first
// requests (the tag checks) are still on the way, that it will soon send
// many requests at once — a new connection for each. Across a link every
// new connection costs a round trip before its request can go (two with
// TLS); dialing them while the checks are answered takes that round trip
// off the critical path.
//
// The pool is shared by every transport RegistryHosts builds (their dial
// functions take a waiting connection to the same address first) and
// holds plain TCP connections: each transport still does its own TLS
// handshake on the connection it takes. A connection nobody takes within
// predialIdle is closed.

// predialIdle is how long a connection dialed ahead waits to be used.
const predialIdle = 5 * time.Second

type predialPool struct {
	mu    sync.Mutex
	addrs map[string]*predialQueue
}

// predialQueue is one address's connections: those dialed and not yet
// taken, and how many dials are still under way.
type predialQueue struct {
	ready   []net.Conn
	pending int
	// arrived is closed, and replaced, each time a dial ends: it wakes
	// every taker waiting on a pending one.
	arrived chan struct{}
}

var predials = &predialPool{addrs: map[string]*predialQueue{}}

var predialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}

// warm dials n connections to addr ("host:port") in the background, less
// those already waiting there.
func (p *predialPool) warm(addr string, n int) {
	p.mu.Lock()
	q := p.queue(addr)
	n -= len(q.ready) + q.pending
	q.pending += max(n, 0)
	p.mu.Unlock()
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), predialer.Timeout)
			c, err := predialer.DialContext(ctx, "tcp", addr)
			cancel()
			p.mu.Lock()
			q.pending--
			if err == nil {
				q.ready = append(q.ready, c)
				time.AfterFunc(predialIdle, func() { p.expire(addr, c) })
			}
			close(q.arrived)
			q.arrived = make(chan struct{})
			p.mu.Unlock()
		}()
	}
}

func (p *predialPool) queue(addr string) *predialQueue {
	q, ok := p.addrs[addr]
	if !ok {
		q = &predialQueue{arrived: make(chan struct{})}
		p.addrs[addr] = q
	}
	return q
}

// take returns a connection dialed ahead to addr: a waiting one, else the
// next of those still being dialed (it would take no longer than a dial of
// its own); nil when there is none.
func (p *predialPool) take(ctx context.Context, addr string) net.Conn {
	for {
		p.mu.Lock()
		q, ok := p.addrs[addr]
		if !ok {
			p.mu.Unlock()
			return nil
		}
		if n := len(q.ready); n > 0 {
			c := q.ready[n-1]
			q.ready = q.ready[:n-1]
			p.mu.Unlock()
			return c
		}
		if q.pending == 0 {
			p.mu.Unlock()
			return nil
		}
		arrived := q.arrived
		p.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return nil
		}
	}
}

// expire closes c if it is still waiting.
func (p *predialPool) expire(addr string, c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.addrs[addr]
	for i, r := range q.ready {
		if r == c {
			q.ready = append(q.ready[:i], q.ready[i+1:]...)
			_ = c.Close()
			return
		}
	}
}

// dialWith makes a transport's dial function take connections dialed ahead
// first.
func (p *predialPool) dialWith(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if network == "tcp" {
			if c := p.take(ctx, addr); c != nil {
				return c, nil
			}
		}
		return dial(ctx, network, addr)
	}
}

// Prepare dials n connections to the registry's endpoint ahead of the
// requests that will use them (uploads about to start, a round trip
// away), so they do not wait for their connections then. It does nothing
// for an endpoint reached through a proxy.
func (r *Repository) Prepare(n int) {
	if n <= 0 {
		return
	}
	u := &url.URL{Scheme: r.host.Scheme, Host: r.host.Host}
	if u.Scheme == "" {
		u.Scheme = "https"
	}
	if proxy, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || proxy != nil {
		return
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	predials.warm(net.JoinHostPort(u.Hostname(), port), n)
}
