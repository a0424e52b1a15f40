package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/progress"
)

type imagesFlags struct {
	quiet   bool
	noTrunc bool
	digests bool
	long    bool
	format  string
	filters []string
}

// imageRow is one line of `ctrpush images`: one name of one image, as
// docker images shows it. Every field is text, so a template's header row
// is the same template run over the column names.
type imageRow struct {
	Repository   string
	Tag          string
	Digest       string
	ID           string
	CreatedSince string
	CreatedAt    string
	Size         string
	// ctrpush's own: the store's view of the image.
	Name      string
	MediaType string
	Platforms string
	Missing   string
	Referrers string
}

// imageHeaders names the columns of a "table" --format.
var imageHeaders = imageRow{
	Repository: "REPOSITORY", Tag: "TAG", Digest: "DIGEST", ID: "IMAGE ID", CreatedSince: "CREATED", CreatedAt: "CREATED AT",
	Size: "SIZE", Name: "NAME", MediaType: "MEDIA TYPE", Platforms: "PLATFORMS", Missing: "MISSING", Referrers: "REFERRERS",
}

const (
	imagesDefaultTable = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	imagesDigestsTable = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	imagesLongTable    = "table {{.Name}}\t{{.ID}}\t{{.MediaType}}\t{{.Platforms}}\t{{.Missing}}\t{{.Size}}\t{{.Referrers}}"
)

func (a *app) imagesCommand() *cobra.Command {
	var f imagesFlags
	cmd := &cobra.Command{
		Use:     "images [flags] [REPOSITORY[:TAG]]",
		Aliases: []string{"ls"},
		Short:   "List the images in the store",
		Long: `List the images in the store as docker images does: one line per name, with
its repository, tag, image ID (the digest of the image's index or manifest,
as Docker's containerd image store shows it, 12 hex characters unless
--no-trunc), when the name was created in this store, and the size of the
image's content present. An image without name shows <none> <none>.

--long shows the store's view instead: the full name and digest, the media
type, the platforms whose content is present and those listed but missing,
and how many referrers (signatures, SBOMs and theirs) the store keeps with
the image.

--format takes a Go template over the fields .Repository, .Tag, .Digest,
.ID, .CreatedSince, .CreatedAt, .Size, and ctrpush's .Name, .MediaType,
.Platforms, .Missing and .Referrers; "table TEMPLATE" adds a header row,
"json" prints one JSON object per line. --filter reference=PATTERN (or the
REPOSITORY[:TAG] argument) keeps the names that match, as docker's glob
(repeat for several: any matches); --filter dangling=true|false keeps the
images without, or with, a name.`,
		Example: `  ctrpush images
  ctrpush images --long
  ctrpush images -q
  ctrpush images --digests registry.example.com/team/app
  ctrpush images --filter 'reference=*/team/*:1.*'
  ctrpush images --format '{{.Repository}}:{{.Tag}} {{.ID}}'
  ctrpush images --format json`,
		Args: rangeArgs(0, 1, "at most one REPOSITORY[:TAG]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, err := imagesFilters(f.filters, args)
			if err != nil {
				return err
			}
			tmpl, table, jsonLines, err := f.template()
			if err != nil {
				return err
			}
			return a.withService(cmd, func(svc *imageservice.Service) error {
				imgs, err := svc.Images(cmd.Context())
				if err != nil {
					return err
				}
				var rows []imageRow
				now := time.Now()
				for _, im := range imgs {
					if !filter.Match(im.Name, im.Target.Digest) {
						continue
					}
					rows = append(rows, f.row(im, now))
				}
				if f.quiet {
					seen := map[string]bool{}
					for _, r := range rows {
						if !seen[r.ID] {
							seen[r.ID] = true
							fmt.Fprintln(a.stdout, r.ID)
						}
					}
					return nil
				}
				if jsonLines {
					enc := json.NewEncoder(a.stdout)
					for _, r := range rows {
						if err := enc.Encode(r); err != nil {
							return err
						}
					}
					return nil
				}
				return writeRows(a.stdout, tmpl, table, rows)
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print only image IDs, each once")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "print full image IDs (sha256:…)")
	fl.BoolVar(&f.digests, "digests", false, "add a DIGEST column")
	fl.BoolVarP(&f.long, "long", "l", false, "the store's view: full name and digest, media type, platforms present and missing, referrers")
	fl.StringVar(&f.format, "format", "", `Go template over each image's fields; "table TEMPLATE" adds a header; "json" prints one JSON object per line`)
	fl.StringArrayVarP(&f.filters, "filter", "f", nil, "keep images that match: reference=PATTERN (a glob over repository[:tag]), dangling=true|false; repeatable")
	return cmd
}

// template picks the output: the --format given, --long's table, or
// docker's table (with --digests, its DIGEST column).
func (f *imagesFlags) template() (tmpl *template.Template, table, jsonLines bool, err error) {
	format := f.format
	switch {
	case f.quiet && format != "":
		return nil, false, false, usagef("--quiet prints only IDs: drop --quiet or --format")
	case f.long && format != "":
		return nil, false, false, usagef("--long is a table of its own: drop --long or --format")
	case format == "json":
		return nil, false, true, nil
	case format == "" && f.long:
		format, f.noTrunc = imagesLongTable, true
	case format == "" && f.digests:
		format = imagesDigestsTable
	case format == "":
		format = imagesDefaultTable
	}
	if rest, ok := strings.CutPrefix(format, "table"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
		table, format = true, strings.TrimLeft(rest, " ")
		if format == "" {
			format = strings.TrimPrefix(imagesDefaultTable, "table ")
		}
	}
	// docker's templates take \t and \n written out.
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	tmpl, err = template.New("images").Option("missingkey=error").Parse(format)
	if err != nil {
		return nil, false, false, usagef("--format %q: %v", f.format, err)
	}
	if err := tmpl.Execute(io.Discard, imageHeaders); err != nil {
		return nil, false, false, usagef("--format %q: %v (the fields are .Repository, .Tag, .Digest, .ID, .CreatedSince, .CreatedAt, .Size, .Name, .MediaType, .Platforms, .Missing, .Referrers)", f.format, err)
	}
	return tmpl, table, false, nil
}

// row is one image name's line.
func (f *imagesFlags) row(im imageservice.ImageSummary, now time.Time) imageRow {
	r := imageRow{
		Repository: "<none>", Tag: "<none>", Digest: "<none>",
		ID:        im.Target.Digest.String(),
		Size:      progress.HumanSize(im.Size),
		Name:      im.Name,
		MediaType: im.Target.MediaType,
		Platforms: joinPlatforms(im.Present),
		Missing:   joinPlatforms(im.Missing),
		Referrers: strconv.Itoa(im.Referrers),
	}
	if !f.noTrunc {
		r.ID = im.Target.Digest.Encoded()
		if len(r.ID) > 12 {
			r.ID = r.ID[:12]
		}
	}
	if im.Err != nil {
		r.Missing = "unreadable: " + im.Err.Error()
	}
	if !im.Created.IsZero() {
		r.CreatedSince = units.HumanDuration(now.Sub(im.Created)) + " ago"
		r.CreatedAt = im.Created.Local().Format("2006-01-02 15:04:05 -0700 MST")
	}
	if imageservice.IsDangling(im.Name) {
		return r
	}
	r.Digest = im.Target.Digest.String()
	if ref, err := reference.ParseNormalizedNamed(im.Name); err == nil {
		r.Repository = reference.FamiliarName(ref)
		if t, ok := ref.(reference.Tagged); ok {
			r.Tag = t.Tag()
		}
	}
	return r
}

// imagesFilters reads --filter values and the REPOSITORY[:TAG] argument
// (a reference pattern, as docker's).
func imagesFilters(filters, args []string) (imageservice.ImageFilter, error) {
	var f imageservice.ImageFilter
	for _, a := range args {
		if err := f.Add("reference", a); err != nil {
			return f, usagef("%v", err)
		}
	}
	for _, fv := range filters {
		key, value, ok := strings.Cut(fv, "=")
		if !ok {
			return f, usagef("--filter %q: give KEY=VALUE (reference=PATTERN or dangling=true|false)", fv)
		}
		if err := f.Add(key, value); err != nil {
			return f, usagef("--filter %v", err)
		}
	}
	return f, nil
}

// writeRows runs tmpl over rows, aligned in columns with a header row for
// a table.
func writeRows(w io.Writer, tmpl *template.Template, table bool, rows []imageRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	if table {
		if err := tmpl.Execute(tw, imageHeaders); err != nil {
			return err
		}
		fmt.Fprintln(tw)
	}
	for _, r := range rows {
		if err := tmpl.Execute(tw, r); err != nil {
			return err
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
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
