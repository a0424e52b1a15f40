package registrytest

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestRefusingHost(t *testing.T) {
	t.Parallel()
	host := RefusingHost(t)
	_, err := net.DialTimeout("tcp", host, 5*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", host, err)
	}
	if ln, err := net.Listen("tcp", host); err == nil {
		ln.Close()
		t.Fatalf("another listener could take %s", host)
	}
}
