package delayproxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The link is as slow as it says: a request waits the connection set-up
// and a round trip, and one connection moves at most a window per round
// trip. (Lower bounds: a busy machine can only make it slower.)
func TestDelayAndWindow(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 4<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if n == 0 {
			_, _ = w.Write(body)
		}
	}))
	defer srv.Close()
	const delay = 25 * time.Millisecond
	p, err := Start(srv.Listener.Addr().String(), Config{Delay: delay, Window: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client := &http.Client{Transport: &http.Transport{}}

	start := time.Now()
	resp, err := client.Post("http://"+p.Addr+"/", "text/plain", bytes.NewReader([]byte("hi")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); took < 4*delay {
		t.Fatalf("a first request took %s: less than set-up and one round trip (%s)", took, 4*delay)
	}

	// 4 MiB through a 512 KiB window: at least 8 round trips.
	start = time.Now()
	resp, err = client.Get("http://" + p.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if n != int64(len(body)) || took < 8*2*delay {
		t.Fatalf("%d bytes in %s: faster than a 512 KiB window every %s allows", n, took, 2*delay)
	}
	if took > 20*time.Second {
		t.Fatalf("%d bytes took %s", n, took)
	}
	// The second request went on the first one's connection.
	if c := p.Connections(); c != 1 {
		t.Fatalf("the proxy counted %d connections for two requests on one kept-alive connection; want 1", c)
	}
}
