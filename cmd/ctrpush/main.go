// Command ctrpush pushes container images from a containerd content store
// to OCI registries. It is a thin shell over package imageservice: flags,
// choosing the store, wiring and exit codes.
//
// Exit codes: 0 pushed, 1 failed, 2 bad usage, 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/containerd/log"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/store"
)

// Exit codes, as docs/BEHAVIOUR.md gives them.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

var errInterrupted = errors.New("interrupted")

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	// Output is not the push: a closed stdout or stderr (`| head`) makes
	// writes fail with EPIPE instead of killing the process with SIGPIPE,
	// and the push goes on (Go exits on SIGPIPE from fd 1 or 2 unless the
	// program asks for the signal; children still get the default).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel(errInterrupted)
		<-sigs // a second signal: leave at once
		os.Exit(exitInterrupted)
	}()
	stopProfile := startProfile()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProfile()
	os.Exit(code)
}

// startProfile writes a CPU profile to $CTRPUSH_CPUPROFILE when set (for
// the benchmark's profiling step).
func startProfile() func() {
	path := os.Getenv("CTRPUSH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	_ = log.SetLevel("error") // containerd's own warnings (fsverity…) stay out of the output
	log.L.Logger.SetOutput(stderr)
	installSecretFilter() // --debug shows containerd's logs too: never a credential
	app := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(ctx, err, app.started)
	fmt.Fprintf(stderr, "ctrpush: %s\n", secrets.redact(message(err)))
	if code == exitUsage && !app.started {
		// The help of the command whose flags or arguments were wrong
		// (the root's for an unknown command).
		path := "ctrpush"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", path)
	}
	return code
}

// usageError is bad usage: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func exitCode(ctx context.Context, err error, started bool) int {
	var ue usageError
	var re *imageservice.ReferenceError
	var oe *imageservice.OptionError
	switch {
	case errors.Is(context.Cause(ctx), errInterrupted):
		return exitInterrupted
	case !started, errors.As(err, &ue), errors.As(err, &re), errors.As(err, &oe):
		// Anything failing before a command ran is cobra's argument or
		// flag parsing: bad usage. So are a malformed reference and an
		// option the library refuses (it came from a flag). Not every
		// errdefs.ErrInvalidArgument is: a registry's 400 wraps it too.
		return exitUsage
	}
	return exitFailed
}

// optionFlags is the flag (or argument) that sets each library option.
var optionFlags = map[string]string{
	"WithAllPlatforms":         "--all-platforms",
	"WithPlatforms":            "--platform",
	"WithPlainHTTP":            "--plain-http",
	"WithMaxConcurrentUploads": "--max-concurrent-uploads",
	"WithMaxRetries":           "--max-retries",
	"WithBaseName":             "--base-name",
	"WithDestination":          "DEST",
	"WithBestEffort":           "--best-effort",
	"WithCompression":          "--compression",
	"Compression.Level":        "--compression-level",
	"WithChunkSize":            "--chunk-size",
	"WithReferrers":            "--referrers-type",
}

// flagOf is the flag that sets option (the option's name when none does).
func flagOf(option string) string {
	if f, ok := optionFlags[option]; ok {
		return f
	}
	return option
}

// message adds what the user can do for errors the library cannot know
// the CLI's words for: within the whole message, the text of a library
// error is put in the CLI's words (flags for option names) and followed by
// a hint naming flags or commands.
func message(err error) string {
	msg := err.Error()
	var (
		nf *imageservice.ImageNotFoundError
		pn *imageservice.PlatformNotFoundError
		pc *imageservice.PlatformConflictError
		mc *imageservice.MissingContentError
		un *imageservice.UnnamedImageError
		iu *store.InUseError
		ce *store.ConnectError
		oe *imageservice.OptionError
		te *imageservice.CertificateError
		mn *imageservice.MultipleNamesError
		ds *store.DamagedError
		re *imageservice.ReferenceError
	)
	if errors.As(err, &re) && re.Scheme() == "http" {
		msg = reword(msg, re.Error(), re.Error()+"; to reach a registry over plain HTTP, push and pull take --plain-http (or --insecure-registry HOST; loopback registries are reached over HTTP anyway)")
	}
	if errors.As(err, &nf) {
		msg = reword(msg, nf.Error(), nf.Error()+"; list local images with `ctrpush images`")
	}
	if errors.As(err, &pn) && len(pn.Missing) > 0 {
		msg = reword(msg, pn.Error(), pn.Error()+" (pull them with `ctrpush pull --platform`)")
	}
	if errors.As(err, &pc) {
		hint := " (--platform, --all-platforms)"
		if len(pc.Wanted) > 0 {
			hint = " (--platform)"
		}
		msg = reword(msg, pc.Error(), pc.Error()+hint)
	}
	if errors.As(err, &mc) {
		msg = reword(msg, mc.Error(), mc.Error()+" (`ctrpush pull --all-platforms`, or --platform)")
	}
	if errors.As(err, &un) && un.Tag != "" {
		msg = reword(msg, un.Error(), un.Error()+"; give its repository with --base-name REPO")
	}
	if errors.As(err, &iu) {
		msg = reword(msg, iu.Error(), iu.Error()+" (--root)")
	}
	if errors.As(err, &ce) {
		msg = reword(msg, ce.Error(), ce.Error()+"; choose another socket with --address, or the embedded store with --root")
	}
	if errors.As(err, &oe) {
		flag := flagOf(oe.Option)
		if oe.Value != nil {
			flag += fmt.Sprintf(" %v", oe.Value)
		}
		what := fmt.Sprint(oe.Err)
		if oe.Excludes != "" {
			what = "excludes " + flagOf(oe.Excludes)
		}
		msg = reword(msg, oe.Error(), flag+": "+what)
	}
	if errors.As(err, &te) {
		msg = reword(msg, te.Error(), fmt.Sprintf("the certificate of registry %s is not trusted; trust its CA with ca = \"/path/to/ca.pem\" in <hosts dir>/%s/hosts.toml, or skip verification for this registry only (--insecure-registry %s): %v",
			te.Registry, te.Registry, te.Registry, te.Err))
	}
	if errors.As(err, &mn) {
		msg = reword(msg, mn.Error(), mn.Error()+" (--force)")
	}
	if errors.As(err, &ds) {
		msg = reword(msg, ds.Error(), ds.Error()+fmt.Sprintf("; move it away (mv %s %s.damaged) and run the command again: ctrpush starts an empty database in its place; then import or pull the store's images again (the blobs under %s, which only the damaged database named, go at the next garbage collection)", ds.Path, ds.Path, filepath.Join(ds.Root, "content")))
	}
	msg = registryHints(err, msg)
	if errors.Is(err, context.Canceled) {
		msg = "interrupted: " + msg
	}
	return msg
}

// reword replaces the first old in msg (a library error's text within the
// whole chain's message) with new; without old in msg, it appends what new
// adds to old.
func reword(msg, old, new string) string {
	if i := strings.Index(msg, old); i >= 0 {
		return msg[:i] + new + msg[i+len(old):]
	}
	return msg + strings.TrimPrefix(new, old)
}
