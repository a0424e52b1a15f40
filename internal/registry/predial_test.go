package registry

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Connections dialed by Prepare are the ones the requests then use: the
// server accepts n connections before any request, and no more for n
// requests at once.
func TestPrepareDialsTheConnectionsRequestsUse(t *testing.T) {
	var accepted atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // all n in flight at once
		w.WriteHeader(http.StatusNotFound)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	host := srv.Listener.Addr().String()
	r, err := NewRepository(RegistryHosts(HostsConfig{PlainHTTP: true}), host, "team/app", ForPush, fastPolicy)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	r.Prepare(n)
	deadline := time.Now().Add(5 * time.Second)
	for accepted.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := accepted.Load(); got != n {
		t.Fatalf("Prepare(%d) opened %d connections before any request", n, got)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := r.BlobExists(t.Context(), digest.FromString(string(rune('a'+i)))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := accepted.Load(); got != n {
		t.Fatalf("%d requests at once opened %d connections in all; want the %d dialed ahead", n, got, n)
	}
}
