package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// A second opener of an embedded store gets a InUseError when a
// transaction of the first outlasts the timeout it gave; a second opener
// while the first is open but idle is fine.
func TestStoreInUseError(t *testing.T) {
	root := t.TempDir()
	held, err := OpenEmbedded(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	second, err := OpenEmbedded(t.Context(), root, WithTimeout(time.Second))
	if err != nil {
		t.Fatalf("a second opener of an idle store: %v", err)
	}
	_ = second.Close()
	err = held.Batch(t.Context(), func(context.Context) error {
		_, err := OpenEmbedded(t.Context(), root, WithTimeout(100*time.Millisecond))
		return err
	})
	var iu *InUseError
	if !errors.As(err, &iu) || iu.Root != root || iu.Waited != 100*time.Millisecond || !errdefs.IsUnavailable(err) {
		t.Fatalf("%v: want a InUseError for %s after 100ms", err, root)
	}
}
