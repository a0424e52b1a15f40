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
	"runtime/pprof"
	"syscall"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/log"

	"github.com/ctrpush/ctrpush/imageservice"
)

// Exit codes, as DESIGN.md gives them.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

var errInterrupted = errors.New("interrupted")

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
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
	app := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(ctx, err, app.started)
	fmt.Fprintf(stderr, "ctrpush: %s\n", message(err))
	if code == exitUsage && !app.started {
		fmt.Fprintln(stderr, "Run 'ctrpush --help' for usage.")
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
	switch {
	case errors.Is(context.Cause(ctx), errInterrupted):
		return exitInterrupted
	case !started, errors.As(err, &ue), errors.As(err, &re):
		// Anything failing before a command ran is cobra's argument or
		// flag parsing: bad usage.
		return exitUsage
	}
	return exitFailed
}

// message adds what the user can do for errors the library cannot know
// the CLI's words for.
func message(err error) string {
	var nf *imageservice.ImageNotFoundError
	if errors.As(err, &nf) {
		return err.Error() + "; list local images with `ctrpush images`"
	}
	if errors.Is(err, docker.ErrInvalidAuthorization) {
		return err.Error() + "; log in with `docker login` or `ctrpush login` (credentials come from $DOCKER_CONFIG/config.json, default ~/.docker)"
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted: " + err.Error()
	}
	return err.Error()
}
