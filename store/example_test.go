package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/store"
)

// Open the store as the ctrpush CLI does without --root or --address: the
// containerd daemon at DefaultAddress when one answers there, else the
// embedded store in FallbackRoot. Root or Address choose one outright.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "ctrpush-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "app")
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}})
	if err := img.WriteOCILayout(archive, testimage.NameAnnotations("example.com/team/app:1.0", "1.0")); err != nil {
		panic(err)
	}
	ctx := context.Background()

	st, err := store.Open(ctx, store.Config{
		Root:      filepath.Join(dir, "store"), // or Address, or FallbackRoot
		Namespace: "example",
	})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	// The Service works on the store's containerd interfaces.
	svc, err := imageservice.New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), imageservice.WithNamespace(st.Namespace()))
	if err != nil {
		panic(err)
	}
	imported, err := svc.Import(ctx, archive)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Kind(), st.Location() == filepath.Join(dir, "store"), st.Namespace(), len(imported))
	// Output:
	// embedded true example 1
}
