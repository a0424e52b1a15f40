package imageservice

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// LabelLeaseOwner marks a lease ctrpush created with the process holding
// it: "PID:START:BOOT" (its start time in clock ticks since boot, and the
// kernel's boot id), so a lease whose process is gone — killed with
// SIGKILL mid-push or mid-import — is recognised and released the next
// time a store is opened, instead of pinning its content for 24 hours.
const LabelLeaseOwner = "ctrpush.owner"

// leaseOwner is this process's owner value, or "" where the process table
// cannot be read (no /proc): such leases are never reclaimed.
var leaseOwner = func() string {
	start, ok := processStart(os.Getpid())
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if !ok || err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d:%s", os.Getpid(), start, strings.TrimSpace(string(boot)))
}()

// processStart reads a process's start time (field 22 of /proc/PID/stat).
func processStart(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 { // fields 3… ; the start time is field 22
		return 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return start, err == nil
}

// ownerGone reports whether the process an owner label names has ended:
// another boot, no such process, or another process with its PID.
func ownerGone(owner string) bool {
	parts := strings.SplitN(owner, ":", 3)
	if len(parts) != 3 || leaseOwner == "" {
		return false
	}
	mine := strings.SplitN(leaseOwner, ":", 3)
	if parts[2] != mine[2] {
		return true
	}
	pid, err1 := strconv.Atoi(parts[0])
	start, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	now, ok := processStart(pid)
	return !ok || now != start
}

// ReclaimLeases releases, in the namespace of ctx, the leases ctrpush
// processes that are gone still hold (those labelled with LabelLeaseOwner;
// nobody else's) and returns how many it released. Deleting a lease lets
// the garbage collector take what only it held: blobs of a killed push's
// new index, a killed import's content and partial ingests.
func ReclaimLeases(ctx context.Context, lm leases.Manager) (int, error) {
	ls, err := lm.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list leases: %w", err)
	}
	n := 0
	for _, l := range ls {
		owner, ok := l.Labels[LabelLeaseOwner]
		if !ok || !ownerGone(owner) {
			continue
		}
		if err := lm.Delete(ctx, l, leases.SynchronousDelete); err != nil && !errdefs.IsNotFound(err) {
			return n, fmt.Errorf("release lease %s of %s, which is gone: %w", l.ID, owner, err)
		}
		log.G(ctx).WithFields(log.Fields{"lease": l.ID, "owner": owner}).Debug("released the lease of a process that is gone")
		n++
	}
	return n, nil
}
