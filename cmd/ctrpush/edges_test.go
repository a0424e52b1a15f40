package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// ran is one in-process run of the CLI.
type ran struct {
	code           int
	stdout, stderr string
}

// ctrpushIn runs the CLI in process on the embedded store at root, with
// stdin as standard input.
func ctrpushIn(t *testing.T, root, stdin string, args ...string) ran {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"--root", root}, args...), strings.NewReader(stdin), &out, &errb)
	return ran{code, out.String(), errb.String()}
}

// What a new user gets wrong first, in process: the exit code, and words
// that name what is wrong and the way on. Each case fails on the messages
// ctrpush gave before (`unexpected EOF`, `must be lowercase`, `invalid
// reference format`, the root's help, an empty password stored).
func TestEdgeErrors(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tarOf := func(files map[string]string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for name, body := range files {
			_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
			_, _ = tw.Write([]byte(body))
		}
		_ = tw.Close()
		return b.Bytes()
	}
	gzipOf := func(b []byte) []byte {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return z.Bytes()
	}
	junk := make([]byte, 3000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	readme := tarOf(map[string]string{"README": "hi\n"})
	layoutDir := filepath.Join(dir, "unpacked")
	if err := os.MkdirAll(layoutDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write("unpacked/manifest.json", []byte("[]"))

	t.Run("import", func(t *testing.T) {
		notArchive := "not an image archive: "
		formats := "; import reads an OCI image layout (a directory, or a tar of one) or a docker save archive, either one gzipped or not"
		for _, tc := range []struct {
			path string
			want string
		}{
			{write("junk.tar", junk), "no file could be read from it"},
			{write("text.tar", []byte("hello, world\n")), "no file could be read from it (unexpected EOF)"},
			{write("empty.tar", nil), "no file could be read from it"},
			{write("readme.tar", readme), "it has neither index.json (OCI) nor manifest.json (docker save)"},
			{write("readme.tar.gz", gzipOf(readme)), "it has neither index.json (OCI) nor manifest.json (docker save)"},
			{write("junk.tar.gz", gzipOf(junk)), "no file could be read from it"},
			{write("layout.tar", tarOf(map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`})), "it has an oci-layout file but no index.json"},
			{write("app.tar.zst", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, junk...)), "it is zstd-compressed (decompress it first: zstd -d)"},
			{write("app.tar.xz", append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, junk...)), "it is xz-compressed (decompress it first: xz -d)"},
			{write("app.tar.bz2", append([]byte("BZh9\x31\x41\x59\x26\x53\x59"), junk...)), "it is bzip2-compressed (decompress it first: bzip2 -d)"},
			{dir, "the directory has no oci-layout file, so it is no OCI image layout"},
			{layoutDir, "its manifest.json reads like an unpacked docker save archive"},
		} {
			got := ctrpushIn(t, root, "", "import", tc.path)
			if got.code != exitFailed || !strings.Contains(got.stderr, "ctrpush: import "+tc.path+": "+notArchive) ||
				!strings.Contains(got.stderr, tc.want) || !strings.Contains(got.stderr, formats) {
				t.Errorf("import %s: exit %d\n%s\nwant exit 1, %q, %q and what import reads", filepath.Base(tc.path), got.code, got.stderr, notArchive, tc.want)
			}
		}
		// Standard input too.
		if got := ctrpushIn(t, root, string(junk), "import", "-"); got.code != exitFailed || !strings.Contains(got.stderr, "import stdin: not an image archive: no file could be read from it") {
			t.Errorf("import - of junk: exit %d\n%s", got.code, got.stderr)
		}
		// Nothing left: no blob, no ingest, no image.
		_ = filepath.WalkDir(filepath.Join(root, "content"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				t.Errorf("a failed import left %s", p)
			}
			return nil
		})
		if got := ctrpushIn(t, root, "", "images", "-q"); got.code != 0 || got.stdout != "" {
			t.Errorf("after failed imports, images -q: exit %d, %q", got.code, got.stdout)
		}
	})

	t.Run("references", func(t *testing.T) {
		space := `it contains a space (character 4): an image reference has no white space (invalid reference format)`
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"tag", "app:1", "Bad Name"}, `invalid target "Bad Name": ` + space},
			{[]string{"tag", "Bad Name", "app:1"}, `invalid image "Bad Name": ` + space},
			{[]string{"push", "Bad Name"}, `invalid source "Bad Name": ` + space},
			{[]string{"pull", "Bad Name"}, `invalid reference "Bad Name": ` + space},
			{[]string{"rmi", "Bad Name"}, `invalid image "Bad Name": ` + space},
			{[]string{"tag", "app:1", "app:1\n"}, `it contains a line break (at the end)`},
			{[]string{"tag", "app:1", "team/App:1"}, `invalid target "team/App:1": the repository path "team/App" has upper case letters: repository names are lower case ("team/app")`},
			{[]string{"push", "registry.example.com/Team/app:1"}, `the repository path "Team/app" has upper case letters: repository names are lower case ("team/app")`},
			{[]string{"tag", "app:1", "team/app!:1"}, `the repository path "team/app!" has '!': a repository path has lower-case letters and digits, with '.', '_', '__' or '-' only between them, and '/' between components`},
			{[]string{"tag", "app:1", "app:bad!tag"}, `the tag "bad!tag" is not a tag: a tag has letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128 characters`},
			{[]string{"tag", "app:1", "app:" + strings.Repeat("1", 129)}, `is not a tag: a tag has letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128 characters`},
			{[]string{"pull", "app@latest"}, `"latest" after '@' is no digest: a digest is ALGORITHM:HEX`},
			{[]string{"push", "https://registry.example.com/team/app:1"}, `invalid source "https://registry.example.com/team/app:1": a reference has no URL scheme: drop "https://" and give "registry.example.com/team/app:1"`},
			{[]string{"push", "app:1", "docker://registry.example.com/team/app:1"}, `invalid destination "docker://registry.example.com/team/app:1": a reference has no URL scheme: drop "docker://"`},
			{[]string{"pull", "oci://registry.example.com/team/app:1"}, `drop "oci://" and give "registry.example.com/team/app:1"`},
			{[]string{"pull", "http://127.0.0.1:5000/team/app:1"}, `drop "http://" and give "127.0.0.1:5000/team/app:1" (invalid reference format); to reach a registry over plain HTTP, push and pull take --plain-http (or --insecure-registry HOST`},
			{[]string{"tag", "https://registry.example.com/team/app:1", "app:1"}, `drop "https://"`},
		} {
			got := ctrpushIn(t, root, "", tc.args...)
			if got.code != exitUsage || !strings.Contains(got.stderr, tc.want) {
				t.Errorf("%q: exit %d\n%s\nwant exit 2 and %q", tc.args, got.code, got.stderr, tc.want)
			}
			if strings.Contains(got.stderr, "must be lowercase") {
				t.Errorf("%q still says the parser's %q:\n%s", tc.args, "must be lowercase", got.stderr)
			}
		}
		// The library's ReferenceError names no flag; only the CLI does,
		// and only for http://.
		if got := ctrpushIn(t, root, "", "pull", "https://registry.example.com/team/app:1"); strings.Contains(got.stderr, "--plain-http") {
			t.Errorf("https:// got the plain-HTTP hint:\n%s", got.stderr)
		}
	})

	t.Run("usage points at the command's help", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"push", "--bogus", "app:1"}, "ctrpush: unknown flag: --bogus\nRun 'ctrpush push --help' for usage.\n"},
			{[]string{"pull", "-Z", "app:1"}, "ctrpush: unknown shorthand flag: 'Z' in -Z\nRun 'ctrpush pull --help' for usage.\n"},
			{[]string{"import", "--bogus", "x.tar"}, "Run 'ctrpush import --help' for usage.\n"},
			{[]string{"tag", "app:1"}, "Run 'ctrpush tag --help' for usage.\n"},
			{[]string{"bogus"}, "ctrpush: unknown command \"bogus\" for \"ctrpush\"\nRun 'ctrpush --help' for usage.\n"},
		} {
			got := ctrpushIn(t, root, "", tc.args...)
			if got.code != exitUsage || !strings.HasSuffix(got.stderr, tc.want) {
				t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tc.args, got.code, got.stderr, tc.want)
			}
		}
	})

	t.Run("login", func(t *testing.T) {
		config := t.TempDir()
		t.Setenv("DOCKER_CONFIG", config)
		// Nothing listens on port 1: a login that got as far as asking
		// the registry would fail with exit 1, not 2.
		reg := "127.0.0.1:1"
		for _, tc := range []struct {
			stdin string
			args  []string
			want  string
		}{
			{"", []string{"-u", "ci", "--password-stdin", reg}, "password required: the password given on standard input (--password-stdin) is empty; give the password or token (echo \"$TOKEN\" | ctrpush login -u USER --password-stdin REGISTRY); nothing was checked or stored"},
			{"\r\n", []string{"-u", "ci", "--password-stdin", reg}, "password required: the password given on standard input (--password-stdin) is empty"},
			{"\n", []string{"-u", "ci", reg}, "password required: the password given on the first line of standard input is empty"},
			{"", []string{"-u", "ci", reg}, "password required: standard input is no terminal to ask on and holds nothing; pipe the password or token to --password-stdin"},
			{"", []string{"-u", "ci", "-p", "", reg}, `-p/--password "": password required, and ctrpush takes none on the command line (ps and the shell history would show it): pipe the password or token to --password-stdin, or leave both out to be asked for it`},
			{"", []string{"-u", "ci", "--password", "s3cret-pw", reg}, "-p/--password: ctrpush takes no password on the command line"},
			{"s3cret-pw\n", []string{"-u", "", "--password-stdin", reg}, "user name required: give it with -u USER"},
			{"s3cret-pw\n", []string{"-u", " ", "--password-stdin", reg}, "user name required: give it with -u USER"},
			{"s3cret-pw\n", []string{"--password-stdin", reg}, "user name required: give it with -u USER"},
		} {
			got := ctrpushIn(t, root, tc.stdin, append([]string{"login"}, tc.args...)...)
			if got.code != exitUsage || !strings.Contains(got.stderr, tc.want) || strings.Contains(got.stderr, "s3cret-pw") {
				t.Errorf("login %q (stdin %q): exit %d, stderr %q; want exit 2 and %q", tc.args, tc.stdin, got.code, got.stderr, tc.want)
			}
		}
		if left, _ := os.ReadDir(config); len(left) != 0 {
			t.Errorf("a refused login wrote %v", left)
		}
	})
}

// push -q and pull -q print the same line, docker's: the full reference,
// one line per destination tagged.
func TestQuietPrintsTheReference(t *testing.T) {
	reg := registrytest.Start(t)
	root := filepath.Join(t.TempDir(), "store")
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: 7})
	name := reg.Host + "/team/app:1.2"
	var archive bytes.Buffer
	if err := img.WriteOCITar(&archive, testimage.NameAnnotations(name, "1.2")); err != nil {
		t.Fatal(err)
	}
	if got := ctrpushIn(t, root, archive.String(), "import", "-"); got.code != 0 {
		t.Fatalf("import: exit %d\n%s", got.code, got.stderr)
	}
	want := func(refs ...string) string { return strings.Join(refs, "\n") + "\n" }
	for _, tc := range []struct {
		root string
		args []string
		want string
	}{
		{root, []string{"push", "-q", name}, want(name)},
		{root, []string{"push", "--quiet", name, reg.Host + "/mirror/app", reg.Host + "/other/app:2"}, want(reg.Host+"/mirror/app:1.2", reg.Host+"/other/app:2")},
		{filepath.Join(t.TempDir(), "a"), []string{"pull", "-q", name}, want(name)},
		{filepath.Join(t.TempDir(), "b"), []string{"pull", "-q", reg.Host + "/other/app@" + img.Target.Digest.String()}, want(reg.Host + "/other/app@" + img.Target.Digest.String())},
		{filepath.Join(t.TempDir(), "c"), []string{"pull", "-q", reg.Host + "/mirror/app"}, ""}, // no latest tag there: an error, nothing on stdout
	} {
		got := ctrpushIn(t, tc.root, "", tc.args...)
		if tc.want == "" {
			if got.code == 0 || got.stdout != "" {
				t.Errorf("%q: exit %d, stdout %q; want a failure and nothing on stdout", tc.args, got.code, got.stdout)
			}
			continue
		}
		if got.code != 0 || got.stdout != tc.want || got.stderr != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 0, stdout %q and nothing on stderr", tc.args, got.code, got.stdout, got.stderr, tc.want)
		}
	}
	// Both say so in their help.
	for _, cmd := range []string{"push", "pull"} {
		if h := strings.Join(strings.Fields(helpOf(t, cmd)), " "); !strings.Contains(h, "print only the full reference of what was pushed (one line per destination) or pulled, as docker does") {
			t.Errorf("%s --help does not say what -q prints:\n%s", cmd, h)
		}
	}
}
