package store

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
)

func testContext(t *testing.T) context.Context {
	return namespaces.WithNamespace(t.Context(), "test")
}

// openTestStore opens a real embedded store in a temporary directory.
func openTestStore(t *testing.T) *Embedded {
	t.Helper()
	st, err := OpenEmbedded(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}
