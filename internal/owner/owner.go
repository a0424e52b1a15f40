// Package owner names the ctrpush process that holds a lease or writes an
// ingest ("PID:START:BOOT"), and tells whether that process is gone, so a
// store opened later reclaims what a killed process left.
package owner

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Label marks a lease ctrpush created with the process holding
// it: "PID:START:BOOT" (its start time in clock ticks since boot, and the
// kernel's boot id), so a lease whose process is gone — killed with
// SIGKILL mid-push or mid-import — is recognised and released the next
// time a store is opened, instead of pinning its content for 24 hours.
const Label = "ctrpush.owner"

// This is this process's owner value, or "" where the process table
// cannot be read (no /proc): such leases are never reclaimed.
var This = func() string {
	start, ok := processStart(os.Getpid())
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if !ok || err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d:%s", os.Getpid(), start, strings.TrimSpace(string(boot)))
}()

// Running reports whether process pid exists.
func Running(pid int) bool {
	_, ok := processStart(pid)
	return ok
}

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

// Gone reports whether the process an owner label names has ended:
// another boot, no such process, or another process with its PID.
func Gone(owner string) bool {
	parts := strings.SplitN(owner, ":", 3)
	if len(parts) != 3 || This == "" {
		return false
	}
	mine := strings.SplitN(This, ":", 3)
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

// IngestMark ends the ref of every ingest ctrpush writes:
// "REF@ctrpush/OWNER/N", OWNER being This for the process writing it and N
// its operation. A partial ingest is then tied to that process: when it is
// gone, the next ctrpush to open the store removes it, whether a lease
// still holds it or not.
const IngestMark = "@ctrpush/"

// OfIngest is the owner an ingest ref names (see IngestMark).
func OfIngest(ref string) (string, bool) {
	i := strings.LastIndex(ref, IngestMark)
	if i < 0 {
		return "", false
	}
	o, _, ok := strings.Cut(ref[i+len(IngestMark):], "/")
	return o, ok && o != ""
}
