package main

import (
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/log"
	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/store"
)

// app holds what every command shares: streams and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	root      string
	address   string
	namespace string
	debug     bool
	registry  registryFlags
	started   bool // a command's own code ran (errors after this are not cobra's)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
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

It works on a containerd daemon's store (--address, --namespace, as ctr and
nerdctl) or, without a daemon, on an embedded store (containerd's own content
store, metadata and garbage collection) under --root; fill it with
'ctrpush import' or 'ctrpush pull'. 'ctrpush info' says which is in use.`,
		Example: `  ctrpush import image.tar
  ctrpush images
  ctrpush push --platform linux/arm64 registry.example.com/team/app:1.2
  ctrpush push localimage:tag registry.example.com/team/app:1.2`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       readBuildVersion().short(),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.started = true
			if a.debug {
				_ = log.SetLevel("debug")
				// Nanosecond timestamps: the request lines show what
				// overlaps and where the time goes.
				_ = log.SetFormat(log.TextFormat)
			}
			return nil
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&a.root, "root", defaultRoot(), "embedded store directory (chooses the embedded store)")
	root.PersistentFlags().StringVar(&a.address, "address", os.Getenv("CONTAINERD_ADDRESS"), "containerd socket (env CONTAINERD_ADDRESS; chooses the daemon); default: "+store.DefaultAddress+" if a daemon answers there, else the embedded store")
	root.PersistentFlags().StringVarP(&a.namespace, "namespace", "n", envOr("CONTAINERD_NAMESPACE", imageservice.DefaultNamespace), "containerd namespace (env CONTAINERD_NAMESPACE)")
	root.PersistentFlags().BoolVar(&a.debug, "debug", false, "log debug details (registry requests) to stderr")
	a.registry.register(root.PersistentFlags())
	root.AddCommand(a.importCommand(), a.imagesCommand(), a.pullCommand(), a.pushCommand(), a.infoCommand(), a.loginCommand(), a.logoutCommand(), a.tagCommand(), a.rmiCommand(), a.serveCommand(), a.versionCommand())
	return root
}

// rangeArgs is cobra.RangeArgs with a usage error.
// rangeArgs wants min to max arguments (max < 0: no limit).
func rangeArgs(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || max >= 0 && len(args) > max {
			return usagef("%q takes %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}
