package imageservice_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/platforms"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/progress"
	"github.com/ctrpush/ctrpush/store"
)

// exampleEnv is a temporary directory with a running registry and an OCI
// archive of a two-platform image named for that registry.
func exampleEnv() (dir, host, archive string, cleanup func()) {
	dir, err := os.MkdirTemp("", "ctrpush-example-")
	if err != nil {
		panic(err)
	}
	reg, stop, err := registrytest.StartProcess(filepath.Join(dir, "registry"))
	if err != nil {
		panic(err)
	}
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}})
	var b bytes.Buffer
	if err := img.WriteOCITar(&b, testimage.NameAnnotations(reg.Host+"/team/app:1.0", "1.0")); err != nil {
		panic(err)
	}
	archive = filepath.Join(dir, "app.tar")
	if err := os.WriteFile(archive, b.Bytes(), 0o644); err != nil {
		panic(err)
	}
	return dir, reg.Host, archive, func() { stop(); os.RemoveAll(dir) }
}

// Open the embedded store, import an archive and push one platform of it,
// printing the summary line as docker does.
func ExampleService_Push() {
	dir, host, archive, cleanup := exampleEnv()
	defer cleanup()
	ctx := context.Background()

	st, err := store.OpenEmbedded(ctx, filepath.Join(dir, "store"))
	if err != nil {
		panic(err)
	}
	defer st.Close()
	svc, err := imageservice.New(st.ContentStore(), st.ImageStore(), st.LeaseManager())
	if err != nil {
		panic(err)
	}
	if _, err := svc.Import(ctx, archive); err != nil {
		panic(err)
	}

	results, err := svc.Push(ctx, host+"/team/app:1.0",
		imageservice.WithDestination(host+"/team/app-arm64"), // takes the source's tag
		imageservice.WithPlatforms("linux/arm64"),
		imageservice.WithProgress(progress.SinkFunc(func(e progress.Event) {
			if e.Result != nil {
				fmt.Printf("%s: digest: %s size: %d\n", e.Result.Tag, e.Result.Digest, e.Result.Size)
			}
		})))
	if err != nil {
		panic(err)
	}
	fmt.Println(results[0].Reference == host+"/team/app-arm64:1.0")
	// Output:
	// 1.0: digest: sha256:afdc3dc9d061b4a285438802ca782e265dc4030836aabf1f771288c0c5d9b438 size: 402
	// true
}

// List the images in a store with the platforms whose content is present.
func ExampleService_Images() {
	dir, _, archive, cleanup := exampleEnv()
	defer cleanup()
	ctx := context.Background()

	st, err := store.OpenEmbedded(ctx, filepath.Join(dir, "store"))
	if err != nil {
		panic(err)
	}
	defer st.Close()
	svc, _ := imageservice.New(st.ContentStore(), st.ImageStore(), st.LeaseManager(),
		imageservice.WithNamespace("example"))
	if _, err := svc.Import(ctx, archive); err != nil {
		panic(err)
	}
	imgs, err := svc.Images(ctx)
	if err != nil {
		panic(err)
	}
	for _, im := range imgs {
		fmt.Println(im.Target.Digest, len(im.Present), "platforms present:", platforms.Format(im.Present[0]), platforms.Format(im.Present[1]))
	}
	// Output:
	// sha256:8fc2feb6461c1d608ea48fbb498f9333244c68db0535f75031b5287eec7ee966 2 platforms present: linux/amd64 linux/arm64
}
