// Package delayproxy is a TCP proxy on 127.0.0.1 that makes loopback look
// like a real link: every byte arrives a one-way delay after it was sent,
// each connection has a window (no more bytes in flight than the window
// until the receiver's acknowledgement comes back, one more delay later —
// so one connection moves at most window/RTT), and an optional bandwidth
// cap shared by all connections. The benchmarks put it between a pusher and
// the registry.
package delayproxy

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Config describes the link.
type Config struct {
	// Delay is the one-way delay (the round trip is twice it).
	Delay time.Duration
	// Window is the bytes one direction of one connection may have in
	// flight (default 4 MiB).
	Window int64
	// BytesPerSecond caps the link, both directions together (0: none).
	BytesPerSecond int64
}

// Proxy is a running delay proxy.
type Proxy struct {
	// Addr is "127.0.0.1:PORT".
	Addr string

	cfg    Config
	target string
	ln     net.Listener
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	cap    *tokenBucket
	conns  atomic.Int64
}

// Connections is how many connections the proxy has accepted so far (each
// one cost its client a round trip to set up).
func (p *Proxy) Connections() int64 { return p.conns.Load() }

// Start proxies connections to target ("127.0.0.1:PORT").
func Start(target string, cfg Config) (*Proxy, error) {
	if cfg.Window <= 0 {
		cfg.Window = 4 << 20
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{Addr: ln.Addr().String(), cfg: cfg, target: target, ln: ln, ctx: ctx, cancel: cancel}
	if cfg.BytesPerSecond > 0 {
		p.cap = &tokenBucket{rate: cfg.BytesPerSecond, last: time.Now()}
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Close stops the proxy and its connections.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer client.Close()
	// Setting up the connection costs a round trip, as on a real link.
	p.sleep(2 * p.cfg.Delay)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	go func() { <-ctx.Done(); client.Close(); server.Close() }()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(ctx, server, client); cancel() }()
	go func() { defer wg.Done(); p.pump(ctx, client, server); cancel() }()
	wg.Wait()
}

type packet struct {
	data []byte
	due  time.Time
}

// pump moves bytes from src to dst a delay late, within the window.
func (p *Proxy) pump(ctx context.Context, dst io.Writer, src io.Reader) {
	window := semaphore.NewWeighted(p.cfg.Window)
	queue := make(chan packet, 4096)
	done := make(chan struct{})
	go func() { // the far end: delivers each packet when it is due
		defer close(done)
		for pk := range queue {
			if !p.sleepUntil(ctx, pk.due) {
				return
			}
			if _, err := dst.Write(pk.data); err != nil {
				return
			}
			n := int64(len(pk.data))
			// The acknowledgement takes one more delay to come back.
			time.AfterFunc(p.cfg.Delay, func() { window.Release(n) })
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if werr := window.Acquire(ctx, int64(n)); werr != nil {
				break
			}
			if p.cap != nil {
				p.cap.take(ctx, int64(n))
			}
			data := append([]byte(nil), buf[:n]...)
			select {
			case queue <- packet{data: data, due: time.Now().Add(p.cfg.Delay)}:
			case <-ctx.Done():
			}
		}
		if err != nil || ctx.Err() != nil {
			break
		}
	}
	close(queue)
	<-done
	if c, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = c.CloseWrite()
	}
}

func (p *Proxy) sleep(d time.Duration) { p.sleepUntil(p.ctx, time.Now().Add(d)) }

func (p *Proxy) sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// tokenBucket spends a shared byte rate.
type tokenBucket struct {
	mu     sync.Mutex
	rate   int64
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(ctx context.Context, n int64) {
	for {
		b.mu.Lock()
		now := time.Now()
		b.tokens = min(b.tokens+now.Sub(b.last).Seconds()*float64(b.rate), float64(b.rate)/10)
		b.last = now
		if b.tokens >= float64(n) || b.tokens >= float64(b.rate)/10 {
			b.tokens -= float64(n)
			b.mu.Unlock()
			return
		}
		wait := time.Duration((float64(n) - b.tokens) / float64(b.rate) * float64(time.Second))
		b.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
