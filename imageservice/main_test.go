package imageservice

import (
	"os"
	"testing"

	"github.com/containerd/log"
)

func TestMain(m *testing.M) {
	// containerd's local store warns that fsverity is unsupported on most
	// test filesystems; keep test output for failures.
	_ = log.SetLevel("error")
	os.Exit(m.Run())
}
