package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/store"
)

// containerdModule is the containerd library ctrpush is built with.
const containerdModule = "github.com/containerd/containerd/v2"

// buildVersion is what a bug report needs to say what ran, read from the
// build information Go embeds in every binary: the module version (a tag
// for `go install …@vX.Y.Z`, a pseudo-version for a build in a checkout),
// the VCS revision and whether the tree had changes, the Go toolchain and
// the containerd library's version.
type buildVersion struct {
	Version    string
	Revision   string
	Time       string
	Modified   bool
	Go         string
	Platform   string
	Containerd string
}

func readBuildVersion() buildVersion {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi)
}

// versionOf reads bi (nil: a binary without build information).
func versionOf(bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Containerd: "unknown"}
	if bi == nil {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	for _, d := range bi.Deps {
		if d.Path == containerdModule {
			v.Containerd = d.Version
			if d.Replace != nil {
				v.Containerd = d.Replace.Path + " " + d.Replace.Version
			}
		}
	}
	return v
}

// short is the one line `ctrpush --version` prints.
func (v buildVersion) short() string {
	s := "ctrpush version " + v.Version
	if v.Revision != "" {
		s += ", revision " + shortRevision(v.Revision)
		if v.Modified {
			s += " (modified)"
		}
	}
	return s + ", " + v.Go + " " + v.Platform + ", containerd " + v.Containerd
}

func shortRevision(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

// write prints the client's part of `ctrpush version`, one fact a line.
func (v buildVersion) write(w io.Writer) {
	fmt.Fprintf(w, "ctrpush:    %s\n", v.Version)
	if v.Revision != "" {
		rev := v.Revision
		var notes []string
		if v.Time != "" {
			notes = append(notes, v.Time)
		}
		if v.Modified {
			notes = append(notes, "modified")
		}
		if len(notes) > 0 {
			rev += " (" + strings.Join(notes, ", ") + ")"
		}
		fmt.Fprintf(w, "revision:   %s\n", rev)
	}
	fmt.Fprintf(w, "go:         %s %s\n", v.Go, v.Platform)
	fmt.Fprintf(w, "containerd: %s (library)\n", v.Containerd)
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ctrpush's version, its Go and containerd library, and the daemon's",
		Long: `Print what a bug report needs: ctrpush's version (the release tag, or the
pseudo-version and VCS revision of a build from a checkout, "modified" when
the tree had changes), the Go toolchain, the containerd library ctrpush is
built with, and the store the flags choose. On a containerd daemon, its
version too; the embedded store is the containerd library itself. The store
is not opened: no lock is taken, nothing is written.

Exit code 1 when the daemon chosen cannot be reached (the client's lines are
printed first).`,
		Example: `  ctrpush version
  ctrpush --version
  ctrpush --address /run/containerd/containerd.sock version`,
		Args: rangeArgs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			readBuildVersion().write(a.stdout)
			kind, location, err := store.Choose(a.storeConfig(cmd))
			if err != nil {
				return err
			}
			if kind != store.KindContainerd {
				fmt.Fprintf(a.stdout, "store:      embedded at %s\n", location)
				return nil
			}
			dv, err := store.DaemonVersionAt(cmd.Context(), location, 0)
			if err != nil {
				fmt.Fprintf(a.stdout, "store:      containerd daemon at %s (no answer)\n", location)
				return err
			}
			fmt.Fprintf(a.stdout, "store:      containerd daemon %s at %s, namespace %s\n", dv, location, a.namespace)
			return nil
		},
	}
}
