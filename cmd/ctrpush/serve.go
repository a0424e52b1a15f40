package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/log"
	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/server"
)

type serveFlags struct {
	listen     string
	grace      time.Duration
	maxUploads int
	maxRetries int
	plainHTTP  bool
	group      string
}

func (a *app) serveCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [--listen unix:///PATH | tcp://127.0.0.1:PORT]",
		Short: "Serve the Docker Engine image API on the store, for the docker CLI",
		Long: `Serve the image part of the Docker Engine API on the same store as every
other command, so the docker CLI and Docker SDKs pull, push, load, save,
tag and remove containerd images through ctrpush:

  DOCKER_HOST=unix:///run/ctrpush/ctrpush.sock docker push registry.example.com/team/app:1.2

Served (API ` + server.MinAPIVersion + ` to ` + server.APIVersion + `, with or without the /v1.NN prefix):

` + endpointHelp() + `
Any other request answers 404 naming what is served. Identical pushes
running at once (same registry, reference, platform and credentials) share
one transfer. Credentials a request carries serve that request only and
are never stored or logged.

The unix socket is created with mode 0660, owned by --group if given. A TCP address without host
listens on 127.0.0.1; any other host is served with a warning: the API has
no TLS and no authentication.

SIGINT or SIGTERM stops accepting, lets running pushes finish for
--shutdown-timeout, then cancels them (their leases are released). A
second signal exits at once. Other ctrpush processes can use the same
embedded store while the server runs.`,
		Example: `  ctrpush serve --listen unix:///run/ctrpush/ctrpush.sock
  ctrpush --address /run/containerd/containerd.sock --namespace moby serve
  ctrpush --root /tmp/store serve --listen tcp://127.0.0.1:2375`,
		Args: rangeArgs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pushOpts := []imageservice.TransferOption{imageservice.WithMaxRetries(f.maxRetries)}
			if cmd.Flags().Changed("max-concurrent-uploads") {
				pushOpts = append(pushOpts, imageservice.WithMaxConcurrentUploads(f.maxUploads))
			}
			if err := imageservice.CheckTransferOptions(pushOpts...); err != nil {
				return err
			}
			if f.listen == "" {
				f.listen = defaultListen()
				if f.listen == "" {
					return usagef("no default socket for a non-root user without XDG_RUNTIME_DIR; give --listen unix:///PATH or tcp://127.0.0.1:PORT")
				}
			}
			var lopts []server.ListenOption
			if f.group != "" {
				gid, err := lookupGroup(f.group)
				if err != nil {
					return err
				}
				lopts = append(lopts, server.WithSocketGroup(gid))
			}
			return a.withService(cmd, func(svc *imageservice.Service) error {
				if !a.debug {
					// One line per API request (after the store is open:
					// containerd's own start-up warnings stay out).
					_ = log.SetLevel("info")
				}
				srv, err := server.New(server.Config{
					Service:     svc,
					Hosts:       a.hostsConfig(f.plainHTTP),
					PushOptions: pushOpts,
					Version:     readBuildVersion().Version,
					// Each request's credentials stay out of the log too.
					OnCredentials: secrets.addCredentials,
				})
				if err != nil {
					return err
				}
				l, warning, err := server.Listen(f.listen, lopts...)
				if err != nil {
					return fmt.Errorf("%w (--listen)", err)
				}
				if warning != "" {
					log.G(cmd.Context()).Warn(warning)
				}
				log.G(cmd.Context()).WithField("listen", f.listen).Info("serving the Docker Engine push API")
				err = srv.Serve(cmd.Context(), l, f.grace)
				log.G(cmd.Context()).Info("stopped")
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "unix:///PATH or tcp://HOST:PORT (default unix:///run/ctrpush/ctrpush.sock for root, else $XDG_RUNTIME_DIR/ctrpush/ctrpush.sock)")
	fl.DurationVar(&f.grace, "shutdown-timeout", 10*time.Second, "how long running pushes may finish after SIGINT/SIGTERM before they are cancelled")
	fl.IntVar(&f.maxUploads, "max-concurrent-uploads", imageservice.DefaultMaxConcurrentUploads, maxUploadsHelp(" per push"))
	fl.IntVar(&f.maxRetries, "max-retries", imageservice.DefaultMaxRetries, "retries of a request after a transient registry fault")
	fl.BoolVar(&f.plainHTTP, "plain-http", false, "talk HTTP to every registry")
	fl.StringVar(&f.group, "group", "", "group (name or ID) that owns the unix socket, so its members may use the API")
	return cmd
}

func defaultListen() string {
	if os.Geteuid() == 0 {
		return "unix:///run/ctrpush/ctrpush.sock"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return "unix://" + filepath.Join(d, "ctrpush", "ctrpush.sock")
	}
	return ""
}

// lookupGroup resolves a group name or numeric ID.
func lookupGroup(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, usagef("--group %s: %v", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// endpointHelp lists the routes the server answers, from the table the
// server matches requests against.
func endpointHelp() string {
	var b strings.Builder
	for _, e := range server.Endpoints() {
		fmt.Fprintf(&b, "  %-11s %-24s %s\n", strings.Join(e.Methods, ","), e.Path, e.What)
	}
	return b.String()
}
