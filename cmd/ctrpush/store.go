package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/store"
)

// openStore opens the store the flags choose: --root given → the embedded
// store there; --address (or CONTAINERD_ADDRESS) → that daemon; neither →
// the daemon at the default socket when one answers there, else the
// embedded store in the default --root. The Service works on it.
func (a *app) openStore(cmd *cobra.Command) (*store.Store, *imageservice.Service, error) {
	st, err := store.Open(cmd.Context(), a.storeConfig(cmd))
	if err != nil {
		return nil, nil, err
	}
	svc, err := serviceOver(st)
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return st, svc, nil
}

// storeConfig is the store the global flags choose (see openStore).
func (a *app) storeConfig(cmd *cobra.Command) store.Config {
	cfg := store.Config{Address: a.address, FallbackRoot: a.root, Namespace: a.namespace}
	if cmd.Flags().Changed("root") {
		cfg.Root = a.root
	}
	return cfg
}

// serviceOver is the Service over st, in its namespace; on the embedded
// store, with its metadata batches and direct blob reads.
func serviceOver(st *store.Store) (*imageservice.Service, error) {
	opts := []imageservice.Option{imageservice.WithNamespace(st.Namespace())}
	if e := st.Embedded(); e != nil {
		opts = append(opts, imageservice.WithBatch(e.Batch), imageservice.WithBlobProvider(e.BlobProvider()))
	}
	return imageservice.New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), opts...)
}

// withService opens the store, runs fn with a Service over it, and closes
// the store.
func (a *app) withService(cmd *cobra.Command, fn func(*imageservice.Service) error) error {
	st, svc, err := a.openStore(cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(svc)
}

func (a *app) infoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Say which store ctrpush uses and where, with the daemon's and ctrpush's versions",
		Example: `  ctrpush info
  ctrpush --address /run/containerd/containerd.sock --namespace k8s.io info`,
		Args: rangeArgs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, svc, err := a.openStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			imgs, err := svc.Images(context.WithoutCancel(cmd.Context()))
			if err != nil {
				return err
			}
			where := "root"
			if st.Kind() == store.KindContainerd {
				where = "address"
			}
			fmt.Fprintf(a.stdout, "store: %s\n%s: %s\nnamespace: %s\nimages: %d\n", st.Kind(), where, st.Location(), st.Namespace(), len(imgs))
			v := readBuildVersion()
			if st.Kind() == store.KindContainerd {
				dv, err := st.DaemonVersion(cmd.Context())
				if err != nil {
					return fmt.Errorf("ask the containerd daemon at %s its version: %w", st.Location(), err)
				}
				fmt.Fprintf(a.stdout, "daemon: containerd %s\n", dv)
			}
			fmt.Fprintf(a.stdout, "ctrpush: %s\ncontainerd library: %s\n", v.Version, v.Containerd)
			return nil
		},
	}
}
