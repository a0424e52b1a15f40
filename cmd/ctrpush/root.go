package main

import (
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/log"
	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
)

// app holds what every command shares: streams and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	root    string
	debug   bool
	started bool // a command's own code ran (errors after this are not cobra's)
}

func defaultRoot() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "ctrpush")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "ctrpush")
	}
	return ".ctrpush"
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ctrpush",
		Short: "Push container images from a containerd content store to OCI registries",
		Long: `ctrpush pushes images from a containerd content store to any OCI registry:
platform selection, cross-repository blob mounts and honest progress.

Without a containerd daemon it uses an embedded store (containerd's own
content store, metadata and garbage collection) under --root; fill it with
'ctrpush import'.`,
		Example: `  ctrpush import image.tar
  ctrpush images
  ctrpush push --platform linux/arm64 registry.example.com/team/app:1.2
  ctrpush push localimage:tag registry.example.com/team/app:1.2`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.started = true
			if a.debug {
				_ = log.SetLevel("debug")
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&a.root, "root", defaultRoot(), "embedded store directory")
	root.PersistentFlags().BoolVar(&a.debug, "debug", false, "log debug details (registry requests) to stderr")
	root.AddCommand(a.importCommand(), a.imagesCommand(), a.pullCommand(), a.pushCommand())
	return root
}

// withService opens the store, runs fn with a Service over it, and closes
// the store.
func (a *app) withService(cmd *cobra.Command, fn func(*imageservice.Service) error) error {
	ctx := cmd.Context()
	store, err := imageservice.OpenEmbedded(ctx, a.root)
	if err != nil {
		return err
	}
	defer store.Close()
	log.G(ctx).WithField("root", store.Root()).Debug("using the embedded store")
	svc, err := imageservice.New(store.ContentStore(), store.ImageStore(), store.LeaseManager(), imageservice.WithBatch(store.Batch))
	if err != nil {
		return err
	}
	return fn(svc)
}

// rangeArgs is cobra.RangeArgs with a usage error.
func rangeArgs(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usagef("%q takes %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}
