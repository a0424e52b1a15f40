package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/progress"
)

func (a *app) imagesCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "images",
		Aliases: []string{"ls"},
		Short:   "List the images in the store",
		Long: `List the images in the store: name, digest, media type, the platforms whose
content is present and those listed but missing, and the size of the
content present, and how many referrers (signatures, SBOMs and theirs) the
store keeps with the image.`,
		Example: `  ctrpush images
  ctrpush --root /tmp/store images`,
		Args: rangeArgs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withService(cmd, func(svc *imageservice.Service) error {
				imgs, err := svc.Images(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tDIGEST\tMEDIA TYPE\tPLATFORMS\tMISSING\tSIZE\tREFERRERS")
				for _, im := range imgs {
					missing := joinPlatforms(im.Missing)
					if im.Err != nil {
						missing = "unreadable: " + im.Err.Error()
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", im.Name, im.Target.Digest, im.Target.MediaType,
						joinPlatforms(im.Present), missing, progress.HumanSize(im.Size), im.Referrers)
				}
				return tw.Flush()
			})
		},
	}
}

func joinPlatforms(ps []ocispec.Platform) string {
	if len(ps) == 0 {
		return "-"
	}
	var s []string
	for _, p := range ps {
		s = append(s, platforms.Format(p))
	}
	return strings.Join(s, ",")
}
