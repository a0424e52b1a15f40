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
		Long: `Give the image SOURCE (a name or an image ID, as "ctrpush images" shows
the digest) the name TARGET, as docker tag does. A TARGET without tag gets
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
	return &cobra.Command{
		Use:     "rmi REF...",
		Aliases: []string{"rm"},
		Short:   "Remove images",
		Long: `Remove each named image, then the content no other image or running push
holds, as docker rmi does. An image ID works when the image has one name.`,
		Example: `  ctrpush rmi registry.example.com/team/app:1.0`,
		Args:    rangeArgs(1, -1, "at least one REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withService(cmd, func(svc *imageservice.Service) error {
				for _, ref := range args {
					name, err := svc.Remove(cmd.Context(), ref)
					if err != nil {
						return err
					}
					fmt.Fprintf(a.stdout, "Untagged: %s\n", name)
				}
				return nil
			})
		},
	}
}
