package integration

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// TestErrorsAtTheEdges: what a new user mistypes gets an error that says
// what is wrong and what to do, with the right exit code, and changes
// nothing.
func TestErrorsAtTheEdges(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	junk := make([]byte, 3000)
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	var noIndex bytes.Buffer
	tw := tar.NewWriter(&noIndex)
	_ = tw.WriteHeader(&tar.Header{Name: "README", Mode: 0o644, Size: 3})
	_, _ = tw.Write([]byte("hi\n"))
	_ = tw.Close()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: 1})
	full, err := os.ReadFile(writeArchive(t, img, "oci-tar", reg.Host+"/team/app:1.0", "1.0"))
	if err != nil {
		t.Fatal(err)
	}

	// import of what is no image archive: exit 1, what is wrong, what
	// import reads, and nothing in the store.
	formats := "import reads an OCI image layout (a directory, or a tar of one) or a docker save archive"
	for _, tc := range []struct {
		name string
		want []string
	}{
		{write("junk.tar", junk), []string{"not an image archive: no file could be read from it", formats}},
		{write("text.tar", []byte("hello\n")), []string{"not an image archive: no file could be read from it", formats}},
		{write("empty.tar", nil), []string{"not an image archive: no file could be read from it", formats}},
		{write("readme.tar", noIndex.Bytes()), []string{"not an image archive: it has neither index.json (OCI) nor manifest.json (docker save)", formats}},
		{write("cut.tar", full[:700]), []string{"not an image archive: it has an oci-layout file but no index.json (cut short?)", formats}},
		// Cut after its index: the image is named and what is missing too.
		{write("half.tar", full[:len(full)/2]), []string{"image " + reg.Host + "/team/app:1.0 in the archive is broken: sha256:", "is missing from the archive"}},
	} {
		r := ctrpush(t, root, "import", tc.name)
		ok := r.code == 1 && strings.Contains(r.stderr, "import "+tc.name+": ")
		for _, w := range tc.want {
			ok = ok && strings.Contains(r.stderr, w)
		}
		if !ok {
			t.Errorf("import %s: exit %d\n%s\nwant exit 1 and %q", filepath.Base(tc.name), r.code, r.stderr, tc.want)
		}
	}
	if c := countStore(t, root); c.images != 0 || c.content != 0 || c.leases != 0 {
		t.Fatalf("failed imports left %+v", c)
	}

	mustCtrpush(t, root, "import", write("app.tar", full))
	reg.Reset(t)
	// References: the part that is wrong and the rule, exit 2, no request.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tag", reg.Host + "/team/app:1.0", "Bad Name"}, `invalid target "Bad Name": it contains a space (character 4): an image reference has no white space (invalid reference format)`},
		{[]string{"tag", reg.Host + "/team/app:1.0", "team/App:1"}, `the repository path "team/App" has upper case letters: repository names are lower case ("team/app")`},
		{[]string{"tag", reg.Host + "/team/app:1.0", "app:bad!tag"}, `the tag "bad!tag" is not a tag: a tag has letters, digits`},
		{[]string{"push", "https://" + reg.Host + "/team/app:1.0"}, `a reference has no URL scheme: drop "https://" and give "` + reg.Host + `/team/app:1.0"`},
		{[]string{"pull", "http://" + reg.Host + "/team/app:1.0"}, `drop "http://"`},
		{[]string{"pull", "http://" + reg.Host + "/team/app:1.0"}, "push and pull take --plain-http"},
		{[]string{"push", "--bogus", reg.Host + "/team/app:1.0"}, "unknown flag: --bogus\nRun 'ctrpush push --help' for usage."},
		{[]string{"images", "--bogus"}, "Run 'ctrpush images --help' for usage."},
		{[]string{"shove"}, "Run 'ctrpush --help' for usage."},
	} {
		r := ctrpush(t, root, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr:\n%s\nwant exit 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if n := len(reg.Requests(t)); n != 0 {
		t.Fatalf("bad references sent %d requests", n)
	}

	// pull -q and push -q print the same line, docker's: the reference.
	pushed := mustCtrpush(t, root, "push", "-q", reg.Host+"/team/app:1.0")
	pulled := mustCtrpush(t, t.TempDir(), "pull", "-q", reg.Host+"/team/app:1.0")
	want := reg.Host + "/team/app:1.0\n"
	if pushed.stdout != want || pulled.stdout != want || pushed.stderr != "" || pulled.stderr != "" {
		t.Errorf("push -q printed %q (stderr %q), pull -q %q (stderr %q); want both %q", pushed.stdout, pushed.stderr, pulled.stdout, pulled.stderr, want)
	}

	// login with an empty password or user: exit 2, nothing asked or stored.
	config := t.TempDir()
	reg.Reset(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"login", "-u", "ci", "--password-stdin", reg.Host}, "password required: the password given on standard input (--password-stdin) is empty"},
		{[]string{"login", "-u", "ci", "-p", "", reg.Host}, `-p/--password "": password required`},
		{[]string{"login", "-u", " ", "--password-stdin", reg.Host}, "user name required: give it with -u USER"},
		{[]string{"login", "--password-stdin", reg.Host}, "user name required: give it with -u USER"},
	} {
		r := ctrpushEnv(t, []string{"DOCKER_CONFIG=" + config}, "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if left, _ := os.ReadDir(config); len(left) != 0 || len(reg.Requests(t)) != 0 {
		t.Errorf("a refused login wrote %d files and sent %d requests", len(left), len(reg.Requests(t)))
	}
}
