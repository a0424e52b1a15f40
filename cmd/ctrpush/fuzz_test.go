package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dockerconfig "github.com/docker/cli/cli/config"
)

// Docker config.json files: credentials, a registry token, or an error
// that names the config directory and never quotes the secret; never a
// panic. Credential helpers named by the file are not found (empty PATH).
func FuzzDockerConfig(f *testing.F) {
	const secret = "fuzz-s3cret"
	auth := base64.StdEncoding.EncodeToString([]byte("user:" + secret))
	for _, s := range []string{
		`{"auths":{"registry.example.com":{"auth":"` + auth + `"}}}`,
		`{"auths":{"registry.example.com":{"auth":"` + auth[:len(auth)-2] + `"}}}`,
		`{"auths":{"registry.example.com":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(secret)) + `"}}}`,
		`{"auths":{"registry.example.com":{"identitytoken":"` + secret + `"}}}`,
		`{"auths":{"registry.example.com":{"registrytoken":"` + secret + `"}}}`,
		`{"auths":{"https://registry.example.com/v1/":{"username":"u","password":"` + secret + `"}}}`,
		`{"credsStore":"nosuchhelper"}`,
		`{"credHelpers":{"registry.example.com":"nosuchhelper"}}`,
		`{"auths":{"registry.example.com":{"auth":` + `"` + secret + `"` + `}}`,
		`{"auths":[]}`, `null`, ``, `{`,
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	previous := dockerconfig.Dir()
	dockerconfig.SetDir(dir)
	f.Cleanup(func() { dockerconfig.SetDir(previous) })
	f.Setenv("PATH", f.TempDir())
	creds := dockerCredentials()
	f.Fuzz(func(t *testing.T, config string) {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		check := func(what string, err error) {
			if err == nil {
				return
			}
			msg := err.Error()
			if !strings.Contains(msg, dir) {
				t.Fatalf("config %q: %s error %q does not name the config directory", config, what, msg)
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, auth) {
				t.Fatalf("config %q: %s error %q quotes the secret", config, what, msg)
			}
		}
		_, _, err := creds("registry.example.com")
		check("credentials", err)
		_, err = dockerRegistryToken("registry.example.com")
		check("registry token", err)
	})
}
