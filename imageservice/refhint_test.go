package imageservice

import (
	"errors"
	"strings"
	"testing"
)

func TestReferenceHint(t *testing.T) {
	for in, want := range map[string]string{
		"https://ghcr.io/team/app:1":      `drop "https://" and give "ghcr.io/team/app:1"`,
		"http://host:5000/app":            "--plain-http",
		"Bad Name":                        "white space (at character 4)",
		"team/App:1":                      `the repository path "team/App" has upper case letters`,
		"Registry.io/team/App":            `the repository path "team/App"`,
		"app:-x":                          `the tag "-x" is not a tag`,
		"app:" + strings.Repeat("a", 129): "is not a tag",
		"app:":                            `the tag "" is not a tag`,
		"team//x":                         "",
		"localhost/a:b!":                  `the tag "b!" is not a tag`,
	} {
		got := referenceHint(in)
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("referenceHint(%q) = %q, want %q", in, got, want)
		}
	}
	e := &ReferenceError{What: "target", Value: "Bad Name", Err: errors.New("invalid reference format")}
	if got := e.Error(); got != `invalid target "Bad Name": it contains white space (at character 4): an image reference has none (invalid reference format)` {
		t.Errorf("Error() = %q", got)
	}
	if e := (&ReferenceError{What: "platform", Value: "linux amd64", Err: errors.New("bad")}); strings.Contains(e.Error(), "white space") {
		t.Errorf("a platform got a reference hint: %q", e.Error())
	}
}
