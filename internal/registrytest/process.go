package registrytest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// StartProcess starts a registry with storage under dir, for callers
// without a testing.TB (examples, benchmarks); args go to testregistry
// (e.g. -htpasswd FILE). stop kills it.
func StartProcess(dir string, args ...string) (r *Registry, stop func(), err error) {
	bin, err := Binary()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, append([]string{"-root", dir}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- strings.TrimSpace(s.Text())
		}
		close(line)
		for s.Scan() {
		}
	}()
	select {
	case host, ok := <-line:
		if !ok || host == "" {
			stop()
			return nil, nil, fmt.Errorf("testregistry exited before listening")
		}
		return &Registry{Host: host, cmd: cmd}, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return nil, nil, fmt.Errorf("testregistry did not start within 30s")
	}
}
