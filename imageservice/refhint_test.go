package imageservice

import (
	"errors"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func TestReferenceHint(t *testing.T) {
	for in, want := range map[string]string{
		"https://ghcr.io/team/app:1":      `drop "https://" and give "ghcr.io/team/app:1"`,
		"http://host:5000/app":            `drop "http://" and give "host:5000/app"`,
		"oci://host/app:1":                `drop "oci://"`,
		"docker://host/app:1":             `drop "docker://"`,
		"Bad Name":                        "it contains a space (character 4): an image reference has no white space",
		"app:1\n":                         "it contains a line break (at the end)",
		"app\t1":                          "it contains a tab (character 4)",
		"team/App:1":                      `the repository path "team/App" has upper case letters`,
		"Registry.io/team/App":            `the repository path "team/App"`,
		"team/app!:1":                     `the repository path "team/app!" has '!': a repository path has lower-case letters and digits, with '.', '_', '__' or '-' only between them`,
		"host.io/team/a~b":                `the repository path "team/a~b" has '~'`,
		"team//x":                         `the repository path "team//x" is not a path`,
		"team/-x":                         `the repository path "team/-x" is not a path`,
		"app:-x":                          `the tag "-x" is not a tag: a tag has letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128 characters`,
		"app:" + strings.Repeat("a", 129): "is not a tag",
		"app:":                            `the tag "" is not a tag`,
		"localhost/a:b!":                  `the tag "b!" is not a tag`,
		"app@latest":                      `"latest" after '@' is no digest: a digest is ALGORITHM:HEX`,
		"app:1@sha256:abc":                `"sha256:abc" after '@' is no digest`,
		"host.io/team/app:1.0":            "",
		"a" + strings.Repeat("/b", 200):   "", // too long: the parser says so
	} {
		got := referenceHint(in)
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("referenceHint(%q) = %q, want %q", in, got, want)
		}
	}
	// The parser's words that mislead ("must be lowercase" for a space)
	// give way to the hint; the error still wraps what the parser said.
	_, perr := reference.ParseNormalizedNamed("Bad Name")
	e := &ReferenceError{What: "target", Value: "Bad Name", Err: perr}
	if got := e.Error(); got != `invalid target "Bad Name": it contains a space (character 4): an image reference has no white space (invalid reference format)` {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(e, perr) {
		t.Errorf("%v does not wrap the parser's error", e)
	}
	if e := (&ReferenceError{What: "platform", Value: "linux amd64", Err: errors.New("bad")}); strings.Contains(e.Error(), "white space") {
		t.Errorf("a platform got a reference hint: %q", e.Error())
	}
	// The library names no flag: the front end adds its own.
	for _, v := range []string{"http://host:5000/app", "Bad Name", "app@latest"} {
		_, perr := reference.ParseNormalizedNamed(v)
		if msg := (&ReferenceError{What: "source", Value: v, Err: perr}).Error(); strings.Contains(msg, "--") {
			t.Errorf("library message names a flag: %q", msg)
		}
	}
	for v, want := range map[string]string{"http://h/a": "http", "https://h/a": "https", "h/a:1": "", "a b://x": ""} {
		if got := (&ReferenceError{What: "source", Value: v}).Scheme(); got != want {
			t.Errorf("Scheme of %q = %q, want %q", v, got, want)
		}
	}
}
