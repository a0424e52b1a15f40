// The stores pushed from: the bench's embedded store and the containerd
// daemon (with ctrpush serve for the docker CLI), and resetting their
// distribution-source labels between rounds.

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/go-digest"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/mount"
	"github.com/ctrpush/ctrpush/store"
)

const daemonNamespace = "bench"

// startServe runs `ctrpush serve` on the daemon's bench namespace and
// points the docker CLI (when installed) at it.
func (b *bench) startServe() (func(), error) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		return nil, fmt.Errorf("no docker CLI")
	}
	sock := filepath.Join(b.work, "serve.sock")
	cmd := exec.Command(b.ctrpush, "--address", b.daemon.Address, "--namespace", daemonNamespace, "serve", "--listen", "unix://"+sock)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
	os.Setenv("DOCKER_HOST", "unix://"+sock)
	os.Setenv("DOCKER_CONFIG", filepath.Join(b.work, "docker-config"))
	for i := 0; ; i++ {
		if _, _, err := b.run(docker, "version"); err == nil {
			break
		} else if i == 100 {
			stop()
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.docker = docker
	return stop, nil
}

// daemonRun runs ctrpush on the containerd daemon.
func (b *bench) daemonRun(args ...string) (string, int64, error) {
	return b.run(b.ctrpush, append([]string{"--address", b.daemon.Address, "--namespace", daemonNamespace}, args...)...)
}

// stripDaemonLabels removes the distribution-source labels from the
// daemon's content, so the next push is cold.
func (b *bench) stripDaemonLabels() error {
	c, err := client.New(b.daemon.Address, client.WithDefaultNamespace(daemonNamespace))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), daemonNamespace)
	return stripSources(ctx, c.ContentStore())
}

// stripLabels removes every distribution-source label from the bench
// store, so a "cold" push really uploads instead of mounting.
func (b *bench) stripLabels() error {
	ctx := namespaces.WithNamespace(context.Background(), imageservice.DefaultNamespace)
	st, err := store.OpenEmbedded(ctx, b.root)
	if err != nil {
		return err
	}
	defer st.Close()
	return stripSources(ctx, st.ContentStore())
}

// staleLabels makes the labels of everything in the store name only
// repository path of registry (one that lacks it all, for the stale-label
// rows; one that holds it, for the unchanged re-push rows).
func (b *bench) staleLabels(registry, path string) error {
	ctx := namespaces.WithNamespace(context.Background(), imageservice.DefaultNamespace)
	st, err := store.OpenEmbedded(ctx, b.root)
	if err != nil {
		return err
	}
	defer st.Close()
	cs := st.ContentStore()
	if err := stripSources(ctx, cs); err != nil {
		return err
	}
	var ds []digest.Digest
	if err := cs.Walk(ctx, func(i content.Info) error { ds = append(ds, i.Digest); return nil }); err != nil {
		return err
	}
	_, err = mount.WriteBack(ctx, cs, ds, registry, path, 1)
	return err
}

func stripSources(ctx context.Context, cs content.Store) error {
	var infos []content.Info
	if err := cs.Walk(ctx, func(i content.Info) error { infos = append(infos, i); return nil }); err != nil {
		return err
	}
	for _, info := range infos {
		var paths []string
		for k := range mount.SourceLabels(info.Labels) {
			paths = append(paths, "labels."+k)
		}
		if paths == nil {
			continue
		}
		if _, err := cs.Update(ctx, content.Info{Digest: info.Digest}, paths...); err != nil {
			return err
		}
	}
	return nil
}
