package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/hinshun/vt10x"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/progress"
)

var ttyCount = regexp.MustCompile(`^([0-9a-f]{12}): Pushing .* ([0-9.]+)(B|kB|MB)/([0-9.]+)(B|kB|MB)`)

func parseSize(v, unit string) float64 {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "kB":
		f *= 1e3
	case "MB":
		f *= 1e6
	}
	return f
}

// The binary on a pseudo-terminal, pushing through a proxy that lets
// 3 MiB/s through: the screen (as a VT100 emulator draws it) shows byte
// counts growing while the upload runs, and ends with every layer Pushed
// and no bar or partial line left.
func TestProgressTTY(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	proxy := faultproxy.Start(t, reg.Host)
	proxy.SetRate(3 << 20)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 1, LayerSize: 12 << 20, Seed: 13})
	name := proxy.Host + "/tty/app:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrpushBin, "--root", root, "push", name)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 120, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	term := vt10x.New(vt10x.WithSize(120, 30))
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			_, _ = term.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	screen := func() string {
		mu.Lock()
		defer mu.Unlock()
		return term.String()
	}

	// While it runs: byte counts strictly between 0 and the total, growing.
	counts := map[string][]float64{}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var waitErr error
loop:
	for {
		select {
		case waitErr = <-exited:
			break loop
		case <-time.After(150 * time.Millisecond):
			for _, line := range strings.Split(screen(), "\n") {
				if os.Getenv("TTY_DEBUG") != "" && strings.Contains(line, "Push") {
					t.Log(strings.TrimSpace(line))
				}
				m := ttyCount.FindStringSubmatch(strings.TrimSpace(line))
				if m == nil {
					continue
				}
				cur, total := parseSize(m[2], m[3]), parseSize(m[4], m[5])
				if cur > total {
					t.Errorf("%s shows %s%s of %s%s", m[1], m[2], m[3], m[4], m[5])
				}
				if cur > 0 && cur < total {
					counts[m[1]] = append(counts[m[1]], cur)
				}
			}
		}
	}
	if waitErr != nil {
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) {
			t.Fatal(waitErr)
		}
		t.Fatalf("push exited %d:\n%s", ee.ExitCode(), screen())
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	growing := false
	for _, cs := range counts {
		for i := 1; i < len(cs); i++ {
			if cs[i] > cs[0] {
				growing = true
			}
		}
	}
	if !growing {
		t.Fatalf("no byte count grew on screen during the upload; counts seen: %v\n%s", counts, screen())
	}

	final := screen()
	for _, l := range img.Manifests[0].Layers {
		id := progress.ShortID(l.Digest.String())
		re := regexp.MustCompile(`(?m)^` + id + `: Pushed\s+[0-9.]+MB\s*$`)
		if !re.MatchString(final) {
			t.Fatalf("final screen has no clean %q Pushed line:\n%s", id, final)
		}
	}
	if strings.Contains(final, "Pushing") || strings.Contains(final, "[=") || strings.Contains(final, "=>") {
		t.Fatalf("final screen keeps a bar or a partial line:\n%s", final)
	}
	if !strings.Contains(final, "1.0: digest: "+img.Target.Digest.String()) {
		t.Fatalf("final screen lacks the summary line:\n%s", final)
	}
}
