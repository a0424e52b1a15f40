package mount

import (
	"strings"
	"testing"
)

// Label values and keys survive any input: no panic, values stay sorted
// and free of duplicates and empty entries, and a round trip is stable.
func FuzzLabelValues(f *testing.F) {
	for _, seed := range []string{"", "a", "b/x,a/y,b/x", ",,", "team/app, team/base", strings.Repeat("r,", 50)} {
		f.Add(seed, "team/new", "[::1]:5000")
	}
	f.Fuzz(func(t *testing.T, value, repo, registry string) {
		v := AppendRepo(value, repo)
		if again := JoinRepos(Repos(v)); again != v {
			t.Fatalf("round trip of %q gave %q", v, again)
		}
		rs := Repos(v)
		for i := 1; i < len(rs); i++ {
			if rs[i-1] >= rs[i] {
				t.Fatalf("value %q not sorted and unique", v)
			}
		}
		if r := RemoveRepo(v, repo); strings.TrimSpace(repo) != "" && !strings.Contains(repo, ",") && contains(Repos(r), strings.TrimSpace(repo)) {
			t.Fatalf("RemoveRepo(%q, %q) = %q still lists it", v, repo, r)
		}
		if host, ok := ParseKey(LabelKey(registry)); ok && host != HostOf(registry) {
			t.Fatalf("ParseKey(LabelKey(%q)) = %q, want %q", registry, host, HostOf(registry))
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
