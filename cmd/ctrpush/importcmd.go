package main

import (
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
)

func (a *app) importCommand() *cobra.Command {
	var baseName string
	cmd := &cobra.Command{
		Use:   "import PATH|-",
		Short: "Import an OCI image layout (directory or tar) or a docker save archive into the store",
		Long: `Import loads an image archive into the store and names its images as
'ctr images import' does: the io.containerd.image.name annotation, else the
docker RepoTags, else org.opencontainers.image.ref.name (a bare tag there
needs --base-name). PATH "-" reads the archive from standard input, as
'docker load' does. It prints each imported name and digest. Importing the
same archive again changes nothing.`,
		Example: `  docker save alpine:3.20 -o alpine.tar && ctrpush import alpine.tar
  docker save alpine:3.20 | ctrpush import -
  ctrpush import ./oci-layout-dir
  ctrpush import --base-name registry.example.com/team/app app-oci.tar`,
		Args: rangeArgs(1, 1, "one archive path"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withService(cmd, func(svc *imageservice.Service) error {
				var dropped []imageservice.DroppedReferrer
				opts := []imageservice.ImportOption{imageservice.WithDroppedReferrers(func(d imageservice.DroppedReferrer) { dropped = append(dropped, d) })}
				if baseName != "" {
					opts = append(opts, imageservice.WithBaseName(baseName))
				}
				var imported []imageservice.Imported
				var err error
				if args[0] == "-" {
					imported, err = svc.ImportStream(cmd.Context(), a.stdin, "stdin", opts...)
				} else {
					imported, err = svc.Import(cmd.Context(), args[0], opts...)
				}
				if err != nil {
					return err
				}
				for _, d := range dropped {
					fmt.Fprintln(a.stderr, droppedReferrer(d))
				}
				for _, im := range imported {
					fmt.Fprintf(a.stdout, "%s %s\n", im.Name, im.Target.Digest)
					if im.Referrers > 0 {
						fmt.Fprintf(a.stderr, "%s: %d referrer(s) kept with it\n", im.Name, im.Referrers)
					}
					if im.Replaced != "" {
						fmt.Fprintf(a.stderr, "%s: was %s before this import\n", im.Name, im.Replaced)
					}
					if len(im.Missing) > 0 {
						var ps []string
						for _, p := range im.Missing {
							ps = append(ps, platforms.Format(p))
						}
						fmt.Fprintf(a.stderr, "%s: partial image: no content for %s in the archive (push the others with --platform, or pull the rest)\n", im.Name, strings.Join(ps, ", "))
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&baseName, "base-name", "", "repository for images the archive names only by tag")
	return cmd
}

// droppedReferrer says which referrer of the archive import left out, and
// why.
func droppedReferrer(d imageservice.DroppedReferrer) string {
	what := d.Referrer.Digest.String()
	if d.Referrer.ArtifactType != "" {
		what += " (" + d.Referrer.ArtifactType + ")"
	}
	msg := fmt.Sprintf("referrer %s of %s not kept: %s", what, d.Subject, d.Reason)
	if len(d.Missing) > 0 {
		var missing []string
		for _, m := range d.Missing {
			missing = append(missing, m.String())
		}
		msg += " (missing " + strings.Join(missing, ", ") + ")"
	}
	return msg
}
