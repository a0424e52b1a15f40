package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/log"
	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
)

// defaultAddress is containerd's socket where nerdctl and ctr look first.
const defaultAddress = "/run/containerd/containerd.sock"

// store is the content, image and lease stores a command runs on.
type store struct {
	kind     string // "embedded" or "containerd"
	location string // root directory or socket address
	svc      *imageservice.Service
	close    func() error
}

// chooseStore picks the store: --root → embedded; --address (or
// CONTAINERD_ADDRESS) → the daemon; neither → the default socket when a
// daemon answers there, else the embedded store.
func (a *app) chooseStore(cmd *cobra.Command) (kind, location string) {
	flags := cmd.Flags()
	switch {
	case flags.Changed("root"):
		return "embedded", a.root
	case a.address != "":
		return "containerd", a.address
	case answers(defaultAddress):
		return "containerd", defaultAddress
	}
	return "embedded", a.root
}

// answers reports whether a unix socket accepts connections.
func answers(address string) bool {
	if _, err := os.Stat(address); err != nil {
		return false
	}
	c, err := net.DialTimeout("unix", address, 500*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func (a *app) openStore(cmd *cobra.Command) (*store, error) {
	ctx := cmd.Context()
	kind, location := a.chooseStore(cmd)
	log.G(ctx).WithFields(log.Fields{"store": kind, "location": location, "namespace": a.namespace}).Debug("store chosen")
	opts := []imageservice.Option{imageservice.WithNamespace(a.namespace)}
	if kind == "embedded" {
		st, err := imageservice.OpenEmbedded(ctx, location)
		if err != nil {
			return nil, err
		}
		svc, err := imageservice.New(st.ContentStore(), st.ImageStore(), st.LeaseManager(), append(opts, imageservice.WithBatch(st.Batch))...)
		if err != nil {
			_ = st.Close()
			return nil, err
		}
		return &store{kind: kind, location: location, svc: svc, close: st.Close}, nil
	}
	c, err := client.New(location, client.WithDefaultNamespace(a.namespace), client.WithTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w (is the daemon running? choose another socket with --address, or the embedded store with --root)", location, err)
	}
	cs := c.ContentStore()
	if root := contentRoot(ctx, c); root != "" {
		log.G(ctx).WithField("root", root).Debug("reading blobs directly from the daemon's content directory when possible")
		cs = imageservice.DirectReads(cs, root)
	}
	svc, err := imageservice.New(cs, c.ImageService(), c.LeasesService(), opts...)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return &store{kind: kind, location: location, svc: svc, close: c.Close}, nil
}

// withService opens the store, runs fn with a Service over it, and closes
// the store.
func (a *app) withService(cmd *cobra.Command, fn func(*imageservice.Service) error) error {
	st, err := a.openStore(cmd)
	if err != nil {
		return err
	}
	defer st.close()
	return fn(st.svc)
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
			defer st.close()
			imgs, err := st.svc.Images(context.WithoutCancel(cmd.Context()))
			if err != nil {
				return err
			}
			where := "root"
			if st.kind == "containerd" {
				where = "address"
			}
			fmt.Fprintf(a.stdout, "store: %s\n%s: %s\nnamespace: %s\nimages: %d\n", st.kind, where, st.location, a.namespace, len(imgs))
			return nil
		},
	}
}

// contentRoot asks the daemon where its content plugin keeps blobs, if it
// can be read from here.
func contentRoot(ctx context.Context, c *client.Client) string {
	resp, err := c.IntrospectionService().Plugins(ctx, "type==io.containerd.content.v1,id==content")
	if err != nil {
		return ""
	}
	for _, p := range resp.Plugins {
		if root := p.Exports["root"]; root != "" {
			if _, err := os.Stat(root); err == nil {
				return root
			}
		}
	}
	return ""
}
