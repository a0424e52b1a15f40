// Measuring: running a program while sampling its peak RSS, and counting
// the requests and uploaded bytes in the registry's request log.

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// measure times fn and reads the registry's request log around it.
func (b *bench) measure(fn func() error) (sample, error) {
	if err := b.resetLog(); err != nil {
		return sample{}, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return sample{}, err
	}
	s := sample{dur: time.Since(start)}
	reqs, err := b.requests()
	if err != nil {
		return s, err
	}
	s.requests = len(reqs)
	for _, r := range reqs {
		if strings.Contains(r.Path, "/blobs/uploads/") && (r.Method == http.MethodPut || r.Method == http.MethodPatch) {
			s.upBytes += r.BodyBytes
		}
	}
	return s, nil
}

// measureRun measures any program, with its peak RSS.
func (b *bench) measureRun(bin string, args ...string) (sample, error) {
	var rss int64
	s, err := b.measure(func() error {
		var err error
		_, rss, err = b.run(bin, args...)
		return err
	})
	s.rssKB = rss
	return s, err
}

// measureCtrpush measures ctrpush on the bench store (as ctrpushRun runs
// it), with its peak RSS.
func (b *bench) measureCtrpush(args ...string) (sample, error) {
	return b.measureRun(b.ctrpush, append([]string{"--root", b.root}, args...)...)
}

// measureCrane measures crane pushing bi's OCI layout to ref (as an index
// when it has more than one manifest), with its peak RSS.
func (b *bench) measureCrane(bi *benchImage, ref string) (sample, error) {
	args := []string{"push", bi.dir, ref}
	if len(bi.img.Manifests) > 1 {
		args = []string{"push", "--index", bi.dir, ref}
	}
	return b.measureRun(b.crane, args...)
}

// parallel runs ctrpush with each argument list at once on the bench
// store and waits for all of them.
func (b *bench) parallel(argLists ...[]string) error {
	var g errgroup.Group
	for _, args := range argLists {
		g.Go(func() error {
			_, _, err := b.ctrpushRun(args...)
			return err
		})
	}
	return g.Wait()
}

// ctrpushRun runs the binary on the bench store; it returns stdout and the
// peak RSS in KiB.
func (b *bench) ctrpushRun(args ...string) (string, int64, error) {
	return b.run(b.ctrpush, append([]string{"--root", b.root}, args...)...)
}

// run runs a program; it returns stdout and the peak RSS in KiB. The peak
// is the child's own high-water mark (VmHWM), read from /proc while it
// runs: rusage's maxrss of a child started by Go also counts the parent's
// memory at the moment of the fork.
func (b *bench) run(bin string, args ...string) (string, int64, error) {
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	peakRSS := watchPeakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	peak := peakRSS()
	if err != nil {
		return "", 0, fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), peak, nil
}

// vmHWM reads the peak resident set (KiB) from a /proc/PID/status file.
func vmHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}

type request struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Status    int    `json:"status"`
	BodyBytes int64  `json:"bodyBytes"`
}

func (b *bench) resetLog() error {
	req, _ := http.NewRequest(http.MethodDelete, "http://"+b.reg.Host+"/_requests", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func (b *bench) requests() ([]request, error) {
	resp, err := http.Get("http://" + b.reg.Host + "/_requests")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []request
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// watchPeakRSS polls process pid's peak RSS (VmHWM, KiB) every 10 ms until
// the returned function is called; that function returns the highest seen.
func watchPeakRSS(pid int) func() int64 {
	var peak int64
	done := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		status := fmt.Sprintf("/proc/%d/status", pid)
		for {
			if v := vmHWM(status); v > peak {
				peak = v
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-polled
		return peak
	}
}
