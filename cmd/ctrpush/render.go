package main

import (
	"os"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/ctrpush/ctrpush/progress"
)

// outputFlags choose how progress is shown.
type outputFlags struct {
	mode  string
	quiet bool
}

func (o *outputFlags) register(fl *pflag.FlagSet, quietHelp string) {
	fl.StringVar(&o.mode, "progress", "auto", "progress output: auto (tty on a terminal, else plain), tty, plain, or json (Docker's JSON message stream on stdout)")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, quietHelp)
}

// renderer builds the progress renderer the flags ask for: progress to
// stderr and results to stdout, or everything as JSON on stdout.
func (a *app) renderer(o outputFlags) (progress.Renderer, error) {
	if o.quiet {
		return progress.Quiet{}, nil
	}
	mode := o.mode
	f, isFile := a.stderr.(*os.File)
	if mode == "auto" {
		mode = "plain"
		if isFile && term.IsTerminal(int(f.Fd())) {
			mode = "tty"
		}
	}
	switch mode {
	case "plain":
		return progress.NewPlain(a.stderr, a.stdout), nil
	case "json":
		return progress.NewJSON(a.stdout), nil
	case "tty":
		width := 100
		if isFile {
			if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
				width = w
			}
		}
		return progress.NewTTY(a.stderr, a.stdout, width), nil
	}
	return nil, usagef("--progress must be auto, tty, plain or json, not %q", o.mode)
}

// finish reports err (if any) in the renderer's format and closes it.
func finish(r progress.Renderer, err error) error {
	if err != nil {
		r.Fail(err)
	}
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return err
}

// quietHelp is -q's help on push and pull, which print the same line.
const quietHelp = "print only the full reference of what was pushed (one line per destination) or pulled, as docker does (registry.example.com/team/app:1.2; pulled by digest, host/repo@sha256:…); no progress"
