package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
)

func (a *app) tagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another name",
		Long: `Give the image SOURCE (a name, or an image ID as "ctrpush images" shows
it: 12 or more hex characters of the digest) the name TARGET, as docker tag does. A TARGET without tag gets
"latest"; a TARGET that names another image is moved to this one.`,
		Example: `  ctrpush tag app:1.0 registry.example.com/team/app:1.0
  ctrpush tag 3f2a9c1e77b0 registry.example.com/team/app`,
		Args: rangeArgs(2, 2, "SOURCE and TARGET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withService(cmd, func(svc *imageservice.Service) error {
				_, err := svc.Tag(cmd.Context(), args[0], args[1])
				return err
			})
		},
	}
}

func (a *app) rmiCommand() *cobra.Command {
	var opts imageservice.DeleteOptions
	cmd := &cobra.Command{
		Use:     "rmi REF...",
		Aliases: []string{"rm"},
		Short:   "Remove images",
		Long: `Remove each named image, then the content no other image or running push
holds, as docker rmi does: a name is untagged, and the image is deleted with
its last name. An image ID removes the image's only name, or with --force
all of them.`,
		Example: `  ctrpush rmi registry.example.com/team/app:1.0
  ctrpush rmi --force 0123456789ab`,
		Args: rangeArgs(1, -1, "at least one REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withService(cmd, func(svc *imageservice.Service) error {
				for _, ref := range args {
					res, err := svc.Delete(cmd.Context(), ref, opts)
					if err != nil {
						return err
					}
					for _, n := range res.Untagged {
						fmt.Fprintf(a.stdout, "Untagged: %s\n", n)
					}
					if res.Deleted != "" {
						fmt.Fprintf(a.stdout, "Deleted: %s\n", res.Deleted)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "remove every name of an image given by ID")
	cmd.Flags().BoolVar(&opts.NoPrune, "no-prune", false, "leave the content in the store (until garbage is next collected)")
	return cmd
}
