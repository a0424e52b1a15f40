package registrytest

import (
	"fmt"
	"syscall"
	"testing"
)

// RefusingHost returns "127.0.0.1:PORT" for a registry that is down:
// connections to it are refused. The port belongs to a socket that is
// bound but never listens, held until the test ends, so no other listener
// can be given the port meanwhile — unlike the port of a stopped registry,
// which a test running in parallel may be handed by the kernel.
func RefusingHost(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	syscall.CloseOnExec(fd)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind 127.0.0.1:0: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		t.Fatalf("getsockname: unexpected address %T", sa)
	}
	return fmt.Sprintf("127.0.0.1:%d", in4.Port)
}
