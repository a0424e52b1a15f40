// Package mount owns what a push needs to know for cross-repository blob
// mounts (the registry's POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>):
// the distribution-source labels that record which repositories of which
// registry hold a blob (their keys and values), whether a blob may be
// mounted at all (CanBeMounted), the candidate repositories to mount it
// from (Candidates), whether the labels name the destination or any
// repository of its registry (Listed, Known), the error for a blob missing
// locally that no candidate could mount (NotMountedError), writing the
// labels back after a push (WriteBack) and dropping a repository that
// turned out not to hold the blob (DropSource). The mounts themselves are
// sent by internal/registry, and imageservice decides when to try them.
//
// Labels: key "containerd.io/distribution.source.<registry host without
// port>", value the repository paths that hold the blob, sorted, without
// duplicates, comma-separated — the format containerd's own pull writes.
//
// It imports nothing of ctrpush.
package mount

import (
	"net"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/pkg/labels"
)

// LabelPrefix starts every distribution-source label key. Note the
// trailing dot: the host follows it.
const LabelPrefix = labels.LabelDistributionSource + "."

// MaxCandidates is how many source repositories a push tries per blob.
const MaxCandidates = 3

// HostOf returns the registry host without port, as the label key uses
// it: "registry.example.com:5000" → "registry.example.com",
// "[::1]:5000" → "::1", "::1" → "::1".
func HostOf(registry string) string {
	if h, _, err := net.SplitHostPort(registry); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(registry, "["), "]")
}

// LabelKey is the label key for a registry ("host[:port]").
func LabelKey(registry string) string { return LabelPrefix + HostOf(registry) }

// ParseKey returns the host a label key is for, and whether it is a
// distribution-source key at all.
func ParseKey(key string) (host string, ok bool) {
	host, ok = strings.CutPrefix(key, LabelPrefix)
	return host, ok && host != ""
}

// Repos splits a label value into repository paths.
func Repos(value string) []string {
	var out []string
	for r := range strings.SplitSeq(value, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// JoinRepos makes a label value: sorted, without duplicates, comma-separated.
func JoinRepos(repos []string) string {
	rs := make([]string, 0, len(repos))
	for _, r := range repos {
		rs = append(rs, Repos(r)...) // a comma never belongs to a repository path
	}
	slices.Sort(rs)
	return strings.Join(slices.Compact(rs), ",")
}

// AppendRepo adds repo to a label value.
func AppendRepo(value, repo string) string { return JoinRepos(append(Repos(value), repo)) }

// RemoveRepo drops repo from a label value.
func RemoveRepo(value, repo string) string {
	repo = strings.TrimSpace(repo)
	return JoinRepos(slices.DeleteFunc(Repos(value), func(r string) bool { return r == repo }))
}

// Fits reports whether key=value is within containerd's label size limit;
// a value that does not fit is not written (the push goes on without it).
func Fits(key, value string) bool { return labels.Validate(key, value) == nil }

// SourceLabels returns only the distribution-source entries of m.
func SourceLabels(m map[string]string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if _, ok := ParseKey(k); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// MergeSources unions the repositories of every distribution-source entry
// of each map, per key.
func MergeSources(ms ...map[string]string) map[string]string {
	var out map[string]string
	for _, m := range ms {
		for k, v := range SourceLabels(m) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = JoinRepos(append(Repos(out[k]), Repos(v)...))
		}
	}
	return out
}
