package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
)

// openStore opens the store the flags choose: --root given → the embedded
// store there; --address (or CONTAINERD_ADDRESS) → that daemon; neither →
// the daemon at the default socket when one answers there, else the
// embedded store in the default --root.
func (a *app) openStore(cmd *cobra.Command) (*imageservice.Store, error) {
	cfg := imageservice.StoreConfig{Address: a.address, FallbackRoot: a.root, Namespace: a.namespace}
	if cmd.Flags().Changed("root") {
		cfg.Root = a.root
	}
	return imageservice.OpenStore(cmd.Context(), cfg)
}

// withService opens the store, runs fn with a Service over it, and closes
// the store.
func (a *app) withService(cmd *cobra.Command, fn func(*imageservice.Service) error) error {
	st, err := a.openStore(cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st.Service())
}

func (a *app) infoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Say which store ctrpush uses and where",
		Example: `  ctrpush info
  ctrpush --address /run/containerd/containerd.sock --namespace k8s.io info`,
		Args: rangeArgs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.openStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			imgs, err := st.Service().Images(context.WithoutCancel(cmd.Context()))
			if err != nil {
				return err
			}
			where := "root"
			if st.Kind() == imageservice.StoreContainerd {
				where = "address"
			}
			fmt.Fprintf(a.stdout, "store: %s\n%s: %s\nnamespace: %s\nimages: %d\n", st.Kind(), where, st.Location(), st.Namespace(), len(imgs))
			return nil
		},
	}
}
