package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// SocketMode is the mode of a unix socket Listen creates: owner and group
// may use the API (as docker.sock), nobody else.
const SocketMode = 0o660

// ListenOption configures Listen.
type ListenOption func(*listenOptions)

type listenOptions struct{ gid int }

// WithSocketGroup gives a unix socket to group gid (as dockerd's --group
// gives docker.sock to "docker"): its members may use the API.
func WithSocketGroup(gid int) ListenOption {
	return func(o *listenOptions) { o.gid = gid }
}

// Listen opens addr: "unix:///path/ctrpush.sock" or "tcp://HOST:PORT".
// A TCP address without host listens on 127.0.0.1. The warning is not
// empty when the API is reachable from other machines (there is no TLS or
// authentication on it). A unix socket left by a process that is gone (a
// socket file nobody listens on) is replaced; anything else at the path —
// a socket a process listens on, a regular file, a directory — is an error
// naming it, and is left as it is.
func Listen(addr string, opts ...ListenOption) (l net.Listener, warning string, err error) {
	o := listenOptions{gid: -1}
	for _, opt := range opts {
		opt(&o)
	}
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		return nil, "", fmt.Errorf("listen address %q: want unix:///PATH or tcp://HOST:PORT", addr)
	}
	switch scheme {
	case "unix":
		l, err := listenUnix(rest, o.gid)
		return l, "", err
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return nil, "", fmt.Errorf("listen address %q: %w (want tcp://HOST:PORT)", addr, err)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			if host != "localhost" {
				warning = fmt.Sprintf("the API on %s is reachable from other machines and has no TLS or authentication: anyone who reaches it can push with the credentials they send, and list and tag images", l.Addr())
			}
		}
		return l, warning, nil
	}
	return nil, "", fmt.Errorf("listen address %q: unknown scheme %q (want unix or tcp)", addr, scheme)
}

func listenUnix(path string, gid int) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("listen address unix://: no socket path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen on unix://%s: %w", path, err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// The socket is created with the mode it keeps: no moment where others
	// could connect.
	old := syscall.Umask(0o777 &^ SocketMode)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on unix://%s: %w", path, err)
	}
	if err := os.Chmod(path, SocketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen on unix://%s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("listen on unix://%s: give the socket to group %d: %w", path, gid, err)
		}
	}
	return l, nil
}

// removeStaleSocket makes room for a new socket at path: nothing there is
// fine, a socket file nobody listens on (its server is gone) is removed,
// anything else is an error that names it and leaves it alone.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen on unix://%s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listen on unix://%s: %s is %s, not a socket; it is left as it is: remove it if nothing needs it, or listen on another path", path, path, fileKind(fi))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("listen on unix://%s: another server answers there (a process listens on the socket); stop it or listen on another address", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listen on unix://%s: cannot tell whether a process listens on the socket there, so it is left as it is (%w); remove it if it is stale, or listen on another address", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("listen on unix://%s: remove the stale socket: %w", path, err)
	}
	return nil
}

// fileKind says what fi is, for an error.
func fileKind(fi fs.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case t&fs.ModeDevice != 0:
		return "a device"
	}
	return "a " + fi.Mode().Type().String() + " file"
}

// Serve answers on l until ctx is done; then it stops accepting, gives
// running pushes up to grace to finish, cancels the rest (their leases
// are released as they end) and returns.
func (s *Server) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	gctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	drained := make(chan struct{})
	go func() { s.Drain(gctx); close(drained) }()
	err := hs.Shutdown(gctx) // waits for streams to end
	<-drained
	if err != nil {
		// The cancelled pushes have ended: their streams are sending their
		// last message now. Give them a moment, then close what is left.
		fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if hs.Shutdown(fctx) != nil {
			_ = hs.Close()
		}
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
