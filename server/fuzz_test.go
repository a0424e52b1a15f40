package server

import (
	"encoding/base64"
	"strings"
	"testing"
)

// X-Registry-Auth headers from clients: credentials, anonymous, or an
// error that never quotes the header; never a panic.
func FuzzDecodeAuth(f *testing.F) {
	for _, s := range []string{
		`{"username":"u","password":"fuzz-s3cret","serveraddress":"r.example.com"}`,
		`{"auth":"` + base64.StdEncoding.EncodeToString([]byte("u:fuzz-s3cret")) + `"}`,
		`{"auth":"fuzz-s3cret"}`, `{"identitytoken":"fuzz-s3cret"}`, `{}`, ``, `{`, `null`, `[]`,
	} {
		f.Add(base64.URLEncoding.EncodeToString([]byte(s)))
	}
	f.Add("fuzz-s3cret%%")
	f.Fuzz(func(t *testing.T, h string) {
		ac, key, err := decodeAuth(h)
		if err != nil {
			if ac != nil || key != "" {
				t.Fatalf("decodeAuth(%q): credentials with an error", h)
			}
			if strings.Contains(err.Error(), "s3cret") || len(h) > 8 && strings.Contains(err.Error(), h) {
				t.Fatalf("decodeAuth(%q): error %q quotes the header", h, err)
			}
			return
		}
		if (ac == nil) != (key == "") {
			t.Fatalf("decodeAuth(%q): credentials %v with key %q", h, ac != nil, key)
		}
	})
}

// ?platform= values: a platform string, none, or an error; never a panic.
func FuzzPlatformParam(f *testing.F) {
	for _, s := range []string{`{"os":"linux","architecture":"arm64"}`, "linux/arm64/v8", "", "{", `{"os":1}`, "a/b/c/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p, err := platformParam(v)
		if err == nil && v == "" && p != "" {
			t.Fatalf("platformParam(\"\") = %q", p)
		}
	})
}
