package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/server"
	"github.com/ctrpush/ctrpush/store"
)

// Serve the Docker Engine push API of an embedded store on a unix socket,
// then stop it. A docker CLI with DOCKER_HOST=unix://<socket> pushes
// through it.
func ExampleServer_Serve() {
	dir, err := os.MkdirTemp("", "ctrpush-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	st, err := store.OpenEmbedded(context.Background(), filepath.Join(dir, "store"))
	if err != nil {
		panic(err)
	}
	defer st.Close()
	svc, err := imageservice.New(st.ContentStore(), st.ImageStore(), st.LeaseManager())
	if err != nil {
		panic(err)
	}
	srv, err := server.New(server.Config{Service: svc, PushOptions: []imageservice.TransferOption{imageservice.WithMaxConcurrentUploads(4)}})
	if err != nil {
		panic(err)
	}
	sock := filepath.Join(dir, "ctrpush.sock")
	l, _, err := server.Listen("unix://" + sock)
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, l, 10*time.Second) }()

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Head("http://ctrpush/_ping")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Api-Version"))

	stop() // as on SIGTERM: running pushes get the grace period
	fmt.Println(<-done)
	// Output:
	// 200 1.56
	// <nil>
}
