package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/progress"
)

type pushFlags struct {
	platforms    []string
	allPlatforms bool
	allTags      bool
	plainHTTP    bool
	maxUploads   int
	maxRetries   int
	out          outputFlags
	dryRun       bool
	foreign      bool
	chunkSizes   []string
	refs         referrersFlags
	bestEffort   bool
	metadataFile string
	compression  string
	level        int
	force        bool
	sign         signFlags
}

func (a *app) pushCommand() *cobra.Command {
	var f pushFlags
	cmd := &cobra.Command{
		Use:   "push [flags] SOURCE [DEST...]",
		Short: "Push an image from the store to one or several registries",
		Long: `Push SOURCE from the store to a registry, under DEST when given (like
'ctr images push REMOTE LOCAL', without retagging locally).

Several DESTs publish the image to each of them in one run: each blob is
read from the store once for every registry that needs it, and no tag
moves anywhere until every destination holds every blob and manifest; if
one destination fails, none is tagged (the blobs sent stay and make the
retry fast), and the error says where each destination stands.
--best-effort tags each destination as soon as it is complete instead.
--metadata-file writes, per destination, what was pushed and how it
ended, on success and on failure.

Tags, as docker push: SOURCE without tag means SOURCE:latest; -a/--all-tags
pushes every local tag of the repository SOURCE names (SOURCE then has no
tag, and each DEST is a repository without tag: each tag goes to the same
tag there). A DEST without tag takes SOURCE's tag; a DEST with a tag
publishes under that tag.

What is pushed: the whole image when all its content is present; otherwise
the host's manifest. --platform picks one manifest; several --platform
values push a new index of just those (its digest differs from the local
image's); --all-platforms pushes the whole image and fails naming any
missing blob.

--referrers also pushes, after the image, the referrers the store keeps
with it (signatures, SBOMs, and theirs: see 'pull --referrers' and
'import'); on a registry without the referrers API ctrpush creates or
updates the sha256-<hex> tag-schema index of each subject, keeping what it
lists already.

--sign cosign --key cosign.key signs what the tag names (the index, the
one manifest, the new index, the compressed image) once, and puts the
signature under its sha256-<hex>.sig tag at every destination before the
tag moves (the password from COSIGN_PASSWORD, else asked); --sign
notation --key KEY.pem --cert CHAIN.pem (or --key NAME of a notation key)
pushes a notation signature as a referrer of the image. Repeat --sign,
each with its --key, for several. A key that cannot be opened stops the
push before anything is sent; a re-push adds no second signature.

Loopback registries (127.0.0.0/8, ::1, localhost) are reached over HTTP;
--plain-http forces HTTP for any registry.`,
		Example: `  ctrpush push registry.example.com/team/app:1.2
  ctrpush push --platform linux/arm64 registry.example.com/team/app:1.2
  ctrpush push --platform linux/amd64 --platform linux/arm64 app:1.2 registry.example.com/team/app:1.2
  ctrpush push registry.example.com/team/app          # its latest tag
  ctrpush push -a registry.example.com/team/app       # every local tag
  ctrpush push localimage:tag 127.0.0.1:5000/team/app:1.2
  ctrpush push --dry-run registry.example.com/team/app:1.2   # what would be sent
  ctrpush push --referrers staging.example.com/team/app:1.2 prod.example.com/team/app:1.2
  ctrpush push app:1.2 ghcr.io/team/app:1.2 quay.io/team/app:1.2 --metadata-file pushed.json
  ctrpush push --sign cosign --key cosign.key app:1.2 registry.example.com/team/app:1.2`,
		Args: rangeArgs(1, -1, "SOURCE and optional DESTs"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkPlatforms(cmd, f.platforms); err != nil {
				return err
			}
			source, defaulted, err := pushSource(args[0], f.allTags)
			if err != nil {
				return err
			}
			args = append([]string{source}, args[1:]...)
			if f.dryRun && f.metadataFile != "" {
				return usagef("--metadata-file records what a push did; --dry-run does nothing: drop one of them")
			}
			opts := []imageservice.TransferOption{imageservice.WithMaxRetries(f.maxRetries)}
			if cmd.Flags().Changed("max-concurrent-uploads") {
				opts = append(opts, imageservice.WithMaxConcurrentUploads(f.maxUploads))
			}
			for _, d := range args[1:] {
				opts = append(opts, imageservice.WithDestination(d))
			}
			if f.bestEffort {
				opts = append(opts, imageservice.WithBestEffort())
			}
			if f.compression != "" && (f.refs.on || len(f.refs.types) > 0) {
				given := "--referrers"
				if len(f.refs.types) > 0 {
					given = "--referrers-type"
				}
				return usagef("--compression excludes %s: referrers name the image's own digests, which compression changes", given)
			}
			switch {
			case f.compression != "":
				opts = append(opts, imageservice.WithCompression(imageservice.Compression{Format: f.compression, Level: f.level, Force: f.force}))
			case cmd.Flags().Changed("compression-level") || f.force:
				return usagef("--compression-level and --force-compression need --compression zstd or gzip")
			}
			if len(f.platforms) > 0 {
				opts = append(opts, imageservice.WithPlatforms(f.platforms...))
			}
			if f.allPlatforms {
				opts = append(opts, imageservice.WithAllPlatforms())
			}
			if f.foreign {
				opts = append(opts, imageservice.WithNondistributableLayers())
			}
			for _, c := range f.chunkSizes {
				host, n, err := parseChunkSize(c)
				if err != nil {
					return err
				}
				opts = append(opts, imageservice.WithChunkSize(host, n))
			}
			opts = append(opts, f.refs.options()...)
			opts = append(opts, imageservice.WithRegistryHosts(a.hosts(f.plainHTTP)))
			// Bad options are usage errors before the store is opened.
			if err := imageservice.CheckTransferOptions(opts...); err != nil {
				return err
			}
			// Keys are opened (and decrypted) before anything is sent.
			signers, err := f.sign.open(a.stdin, a.stderr)
			if err != nil {
				return err
			}
			for _, s := range signers {
				opts = append(opts, imageservice.WithSigner(s))
			}
			return a.withService(cmd, func(svc *imageservice.Service) (err error) {
				if defaulted {
					defer func() {
						if tags, terr := svc.Tags(cmd.Context(), strings.TrimSuffix(source, ":"+defaultTag)); terr == nil {
							err = latestHint(err, source, tags)
						}
					}()
				}
				if f.dryRun {
					plans, err := svc.PlanPush(cmd.Context(), args[0], opts...)
					printPlans(a.stdout, plans)
					return err
				}
				r, err := a.renderer(f.out)
				if err != nil {
					return err
				}
				results, err := svc.Push(cmd.Context(), args[0], append(opts, imageservice.WithProgress(r))...)
				if f.metadataFile != "" {
					if merr := writePushMetadata(f.metadataFile, args, results, err); merr != nil {
						fmt.Fprintf(a.stderr, "ctrpush: warning: %v\n", merr)
					}
				}
				err = finish(r, err)
				if f.out.quiet {
					for _, r := range results {
						if r.Tagged {
							fmt.Fprintln(a.stdout, r.Reference)
						}
					}
				}
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.platforms, "platform", nil, "push only this platform (os/arch[/variant]); repeat or comma-separate for several")
	fl.BoolVarP(&f.allTags, "all-tags", "a", false, "push every local tag of the repository SOURCE names (SOURCE without tag; DESTs repositories without tag)")
	fl.BoolVar(&f.allPlatforms, "all-platforms", false, "push every platform; fail if any content is missing")
	fl.BoolVar(&f.plainHTTP, "plain-http", false, "use HTTP, not HTTPS, for the registry")
	fl.IntVar(&f.maxUploads, "max-concurrent-uploads", imageservice.DefaultMaxConcurrentUploads, maxUploadsHelp(""))
	fl.IntVar(&f.maxRetries, "max-retries", imageservice.DefaultMaxRetries, "retries of a transient registry fault (reset, timeout, 408, 429, 500, 502, 503, 504) per blob or manifest, with backoff and Retry-After")
	f.out.register(fl, quietHelp)
	fl.StringArrayVar(&f.chunkSizes, "chunk-size", nil, chunkSizeHelp)
	fl.BoolVar(&f.foreign, "allow-nondistributable-artifacts", false, "upload non-distributable (foreign) layers too, e.g. Windows base layers (default: skipped, as the registry's clients fetch them from their URLs)")
	f.refs.register(fl, "push")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print per blob whether it would be uploaded, mounted or skipped; change nothing")
	fl.StringVar(&f.compression, "compression", "", "publish layers compressed with zstd or gzip: layers in another format (an uncompressed layer always) are converted, streamed through every core, kept in the store for the next push; the image gets a new digest (default: layers as they are)")
	fl.IntVar(&f.level, "compression-level", 0, "level for --compression (zstd 1-22, default 3; gzip 1-9, default 6)")
	fl.BoolVar(&f.force, "force-compression", false, "with --compression, recompress every layer, also those already in that format")
	fl.BoolVar(&f.bestEffort, "best-effort", false, "with several DESTs, tag each destination as soon as it holds the whole image, whatever the others (default: no tag moves unless every destination holds the whole image)")
	f.sign.register(fl)
	fl.StringVar(&f.metadataFile, "metadata-file", "", "write what was pushed to FILE as JSON, per destination: reference, digest, media type, size, platforms, reduced or new index, and the error if it failed")
	return cmd
}

// printPlans prints a dry run: one line per blob, then a summary per tag.
func printPlans(w io.Writer, plans []imageservice.PushPlan) {
	for _, p := range plans {
		fmt.Fprintf(w, "The push refers to repository [%s] (dry run)\n", p.Repository)
		if p.Reduction != nil {
			fmt.Fprintln(w, p.Reduction.Text())
		}
		if c := p.Compression; c != nil {
			fmt.Fprintf(w, "Would compress with %s (level %d): %d layer(s) to convert, %d converted by an earlier push; the image pushed gets a new digest (the lines below are the image as stored)\n",
				c.Format, c.Level, c.Layers, c.Reused)
		}
		counts := map[imageservice.PlannedAction]int{}
		for _, b := range p.Blobs {
			counts[b.Action]++
			detail := string(b.Action)
			switch b.Action {
			case imageservice.ActionMount:
				detail = "mount from " + b.From
			case imageservice.ActionExists:
				detail = "already exists"
			case imageservice.ActionPut:
				detail = "put"
			case imageservice.ActionSkip:
				detail = "skip (foreign layer)"
			case imageservice.ActionMissing:
				detail = "missing locally"
			}
			if b.Via != "" {
				detail += " (" + b.Via + ")"
			}
			switch {
			case b.From != "" && b.Action == imageservice.ActionUpload:
				detail = "mount from " + b.From + ", may upload"
			case b.From != "" && b.Action == imageservice.ActionMissing:
				detail = "mount from " + b.From + ", else missing"
			}
			what := b.Descriptor.MediaType
			if b.Referrer {
				what += " (referrer)"
			}
			fmt.Fprintf(w, "%s: %-22s %10s  %s\n", progress.ShortID(b.Descriptor.Digest.String()), detail,
				progress.HumanSize(b.Descriptor.Size), what)
		}
		fmt.Fprintf(w, "%s: would push digest: %s size: %d", p.Tag, p.Descriptor.Digest, p.Descriptor.Size)
		if p.NewIndex {
			fmt.Fprint(w, " (a new index)")
		}
		fmt.Fprintf(w, "; %d to upload (%s), %d to mount, %d already there, %d manifest(s) to put",
			counts[imageservice.ActionUpload], progress.HumanSize(p.UploadBytes), counts[imageservice.ActionMount],
			counts[imageservice.ActionExists], counts[imageservice.ActionPut])
		if n := counts[imageservice.ActionSkip]; n > 0 {
			fmt.Fprintf(w, ", %d foreign layer(s) skipped", n)
		}
		if n := counts[imageservice.ActionMissing]; n > 0 {
			fmt.Fprintf(w, ", %d missing locally and not mountable (the push would fail on them)", n)
		}
		if p.Referrers > 0 {
			fmt.Fprintf(w, ", %d referrer(s)", p.Referrers)
			if len(p.ReferrersIndexes) > 0 {
				fmt.Fprintf(w, " (tag-schema index to write: %s", strings.Join(p.ReferrersIndexes, ", "))
				if p.ReferrersAPIUnknown {
					fmt.Fprint(w, ", unless the registry has the referrers API: it cannot tell before the repository exists")
				}
				fmt.Fprint(w, ")")
			}
		}
		fmt.Fprintln(w)
		for _, sg := range p.Signatures {
			if p.Compression != nil {
				fmt.Fprintf(w, "%s: would sign the compressed image (its digest is known once converted) with %s\n", p.Tag, sg.Signer)
				continue
			}
			fmt.Fprintf(w, "%s: would sign %s with %s, the signature as %s\n", p.Tag, sg.Subject, sg.Signer, sg.Where)
		}
	}
}
