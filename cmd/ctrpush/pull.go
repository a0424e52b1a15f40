package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ctrpush/ctrpush/imageservice"
)

func (a *app) pullCommand() *cobra.Command {
	var (
		plats     []string
		all       bool
		plainHTTP bool
		out       outputFlags
		refs      referrersFlags
	)
	cmd := &cobra.Command{
		Use:   "pull [flags] REF",
		Short: "Pull an image from a registry into the store",
		Long: `Pull REF into the store. The index, every manifest and every config are
fetched (they are small); layers only for the requested platforms (default:
this host's; --all-platforms: all). A later push of the whole index to
another repository of the same registry mounts the layers not pulled.
Content already in the store is not fetched again.

--referrers also fetches the referrers of every manifest pulled (OCI 1.1
artifacts whose subject it is: signatures, SBOMs), and theirs, with their
content, from the referrers API or else the sha256-<hex> tag schema; the
store keeps them as long as the image. --referrers-type keeps only the
image's referrers of that artifact type (repeatable).`,
		Example: `  ctrpush pull registry.example.com/team/app:1.2
  ctrpush pull --platform linux/arm64 registry.example.com/team/app:1.2
  ctrpush pull --all-platforms 127.0.0.1:5000/team/app:1.2
  ctrpush pull --referrers staging.example.com/team/app:1.2   # with signatures and SBOMs`,
		Args: rangeArgs(1, 1, "one image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkPlatforms(cmd, plats); err != nil {
				return err
			}
			var opts []imageservice.TransferOption
			if len(plats) > 0 {
				opts = append(opts, imageservice.WithPlatforms(plats...))
			}
			if all {
				opts = append(opts, imageservice.WithAllPlatforms())
			}
			opts = append(opts, refs.options()...)
			opts = append(opts, imageservice.WithRegistryHosts(a.hosts(plainHTTP)))
			if err := imageservice.CheckTransferOptions(opts...); err != nil {
				return err
			}
			return a.withService(cmd, func(svc *imageservice.Service) error {
				r, err := a.renderer(out)
				if err != nil {
					return err
				}
				res, err := svc.Pull(cmd.Context(), args[0], append(opts, imageservice.WithProgress(r))...)
				err = finish(r, err)
				if err == nil && out.quiet {
					fmt.Fprintln(a.stdout, res.Name)
				}
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&plats, "platform", nil, "fetch layers of this platform (os/arch[/variant]); repeat or comma-separate")
	fl.BoolVar(&all, "all-platforms", false, "fetch the layers of every platform")
	fl.BoolVar(&plainHTTP, "plain-http", false, "use HTTP, not HTTPS, for the registry")
	out.register(fl, quietHelp)
	refs.register(fl, "fetch")
	return cmd
}

// referrersFlags are --referrers and --referrers-type, on pull and push.
type referrersFlags struct {
	on    bool
	types []string
}

func (f *referrersFlags) register(fl *pflag.FlagSet, verb string) {
	fl.BoolVar(&f.on, "referrers", false, verb+" the image's referrers too (signatures, SBOMs and their own referrers)")
	fl.StringArrayVar(&f.types, "referrers-type", nil, "with --referrers: only the image's referrers of this artifact type (repeatable); implies --referrers")
}

func (f *referrersFlags) options() []imageservice.TransferOption {
	if !f.on && len(f.types) == 0 {
		return nil
	}
	return []imageservice.TransferOption{imageservice.WithReferrers(f.types...)}
}
