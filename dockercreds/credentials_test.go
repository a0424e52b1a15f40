package dockercreds

import (
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	f.Setenv("PATH", f.TempDir())
	f.Fuzz(func(t *testing.T, config string) {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		creds, token := Credentials(dir) // each host is read once per call
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
		_, err = token("registry.example.com")
		check("registry token", err)
	})
}

func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	hub := base64.StdEncoding.EncodeToString([]byte("hubuser:hubpass"))
	config := `{"auths":{
		"https://index.docker.io/v1/":{"auth":"` + hub + `"},
		"registry.example.com":{"username":"u","password":"p"},
		"id.example.com":{"identitytoken":"refresh"},
		"token.example.com":{"registrytoken":"bearer"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, token := Credentials(dir)
	for _, tc := range []struct{ host, user, secret, token string }{
		{"registry-1.docker.io", "hubuser", "hubpass", ""},
		{"docker.io", "hubuser", "hubpass", ""},
		{"registry.example.com", "u", "p", ""},
		{"id.example.com", "", "refresh", ""},
		{"token.example.com", "", "", "bearer"},
		{"other.example.com", "", "", ""},
	} {
		u, s, err := creds(tc.host)
		if err != nil || u != tc.user || s != tc.secret {
			t.Errorf("credentials(%s) = %q, %q, %v; want %q, %q", tc.host, u, s, err, tc.user, tc.secret)
		}
		tok, err := token(tc.host)
		if err != nil || tok != tc.token {
			t.Errorf("registry token(%s) = %q, %v; want %q", tc.host, tok, err, tc.token)
		}
	}
}

// A failing credential helper is named; what it printed is not quoted.
func TestDockerConfigCredentialsFailingHelper(t *testing.T) {
	dir, bin := t.TempDir(), t.TempDir()
	const leak = "helper-said-s3cret"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-failing"), []byte("#!/bin/sh\necho "+leak+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credHelpers":{"registry.example.com":"failing"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, _ := Credentials(dir)
	_, _, err := creds("registry.example.com")
	if err == nil || !strings.Contains(err.Error(), "docker-credential-failing") || !strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), leak) {
		t.Fatalf("error %v: want one naming the helper and %s, without its output", err, dir)
	}
}

// A credential helper is asked once per host for the life of the
// functions DockerConfigCredentials returns (one push), its failure too,
// however many requests want credentials; what it prints on stderr stays
// out of ours. Its answer is used as docker uses it ("<token>" is an
// identity token).
func TestCredentialHelperAskedOncePerHost(t *testing.T) {
	dir, bin := t.TempDir(), t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	helper := "#!/bin/sh\nread server\necho \"$server\" >> " + calls + "\necho helper-stderr-s3cret >&2\n" +
		"case \"$server\" in\n" +
		"ok.example.com) echo '{\"Username\":\"u\",\"Secret\":\"p\"}' ;;\n" +
		"id.example.com) echo '{\"Username\":\"<token>\",\"Secret\":\"refresh\"}' ;;\n" +
		"*) exit 1 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-counting"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credsStore":"counting"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The helper's stderr would go to this process's os.Stderr.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	creds, token := Credentials(dir)
	for range 10 {
		if u, p, err := creds("ok.example.com"); err != nil || u != "u" || p != "p" {
			t.Errorf("ok.example.com: %q, %q, %v", u, p, err)
		}
		if u, p, err := creds("id.example.com"); err != nil || u != "" || p != "refresh" {
			t.Errorf("id.example.com: %q, %q, %v", u, p, err)
		}
		if _, _, err := creds("failing.example.com"); err == nil || !strings.Contains(err.Error(), "docker-credential-counting") || !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("failing.example.com: %v; want the helper and its exit status named", err)
		}
		if tok, err := token("failing.example.com"); tok != "" || err != nil {
			t.Errorf("registry token of failing.example.com: %q, %v", tok, err)
		}
	}
	os.Stderr = stderr
	w.Close()
	printed, _ := io.ReadAll(r)
	if strings.Contains(string(printed), "helper-stderr-s3cret") {
		t.Errorf("the helper's stderr reached ours: %q", printed)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"ok.example.com", "id.example.com", "failing.example.com"} {
		if n := strings.Count(string(b), host+"\n"); n != 1 {
			t.Errorf("helper asked %d times for %s, want once:\n%s", n, host, b)
		}
	}
}

// What SaveDockerCredentials writes, DockerConfigCredentials reads, under
// Docker Hub's key for Docker Hub; EraseDockerCredentials removes it.
func TestSaveErase(t *testing.T) {
	dir := t.TempDir()
	// Each read is a new DockerConfigCredentials: one keeps what it read.
	creds := func(host string) (string, string, error) {
		c, _ := Credentials(dir)
		return c(host)
	}
	for _, host := range []string{"registry.example.com:5000", "docker.io"} {
		if err := Save(dir, host, "u", "p"); err != nil {
			t.Fatal(err)
		}
		lookup := host
		if host == "docker.io" {
			lookup = "registry-1.docker.io"
		}
		if u, p, err := creds(lookup); err != nil || u != "u" || p != "p" {
			t.Fatalf("after saving %s: %q, %q, %v", host, u, p, err)
		}
		if err := Erase(dir, host); err != nil {
			t.Fatal(err)
		}
		if u, p, err := creds(lookup); err != nil || u != "" || p != "" {
			t.Fatalf("after erasing %s: %q, %q, %v", host, u, p, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "registry.example.com") {
		t.Fatalf("config.json still names the registry:\n%s", b)
	}
}
