package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

// A metadata database that bolt cannot read is a DamagedError
// (errdefs.ErrDataLoss) naming the file, whether bolt refuses it or panics
// on it; a panic of code running inside a transaction is not taken for
// damage.
func TestDamagedError(t *testing.T) {
	root := t.TempDir()
	st, err := OpenEmbedded(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != "not the database" {
				t.Errorf("a panic inside a transaction came back as %v", r)
			}
		}()
		_ = st.Batch(testContext(t), func(context.Context) error { panic("not the database") })
	}()
	if err := st.Batch(testContext(t), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("the store after a panic of a transaction's own code: %v", err)
	}
	st.Close()

	path := filepath.Join(root, "metadata.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2 * 4096; i < len(b); i++ { // past the meta pages: bolt panics on open
		b[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenEmbedded(t.Context(), root)
	var de *DamagedError
	if !errors.As(err, &de) || de.Path != path || de.Root != root || !errdefs.IsDataLoss(err) {
		t.Fatalf("open with a damaged database: %v; want a DamagedError naming %s", err, path)
	}
}
