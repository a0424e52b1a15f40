package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
	"github.com/ctrpush/ctrpush/store"
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	downHost := registrytest.RefusingHost(t) // a registry that is down

	root := t.TempDir()
	name := reg.Host + "/team/app:1.0"
	importSample(t, root, name, "1.0", 1)
	// the same image under the stopped registry's name
	importSample(t, root, downHost+"/team/app:1.0", "1.0", 1)

	// an archive that names its image only by tag
	tagOnly := writeArchive(t, testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Seed: 5}), "oci-tar", "", "1.0")

	// a hosts.toml whose [host] entry has no host name
	badHosts := t.TempDir()
	writeFile(t, filepath.Join(badHosts, reg.Host, "hosts.toml"), []byte("[host.\"#mirror\"]\n  capabilities = [\"push\"]\n"))

	cases := []struct {
		name string
		args []string
		code int
		// the one error line must contain all of these
		want []string
	}{
		{"malformed source", []string{"push", "team/App:1"}, 2, []string{`invalid source "team/App:1"`}},
		{"malformed destination", []string{"push", name, "bad//dest"}, 2, []string{`invalid destination "bad//dest"`}},
		{"tagged destination for every tag", []string{"push", "-a", reg.Host + "/team/app", reg.Host + "/x:1"}, 2, []string{"destination must be a repository without tag"}},
		{"unknown flag", []string{"push", "--no-such-flag", name}, 2, []string{"unknown flag: --no-such-flag"}},
		{"unknown command", []string{"shove", name}, 2, []string{`unknown command "shove"`}},
		{"missing argument", []string{"push"}, 2, []string{"takes SOURCE"}},
		{"bad platform", []string{"push", "--platform", "linux/amd64/v9/x", name}, 2, []string{"invalid platform"}},
		{"platform and all platforms", []string{"push", "--platform", "linux/amd64", "--all-platforms", name}, 2, []string{"--all-platforms: excludes --platform"}},
		{"zero uploads", []string{"push", "--max-concurrent-uploads", "0", name}, 2, []string{"--max-concurrent-uploads 0: must be at least 1"}},
		{"negative retries", []string{"push", "--max-retries", "-1", name}, 2, []string{"--max-retries -1: must not be negative"}},
		{"dry run with a metadata file", []string{"push", "--dry-run", "--metadata-file", filepath.Join(root, "m.json"), name}, 2, []string{"--metadata-file records what a push did; --dry-run does nothing"}},
		{"unknown compression", []string{"push", "--compression", "lz4", name}, 2, []string{"--compression lz4", "zstd or gzip"}},
		{"compression level without compression", []string{"push", "--compression-level", "5", name}, 2, []string{"--compression-level", "need --compression zstd or gzip"}},
		{"force compression without compression", []string{"push", "--force-compression", name}, 2, []string{"--force-compression", "need --compression zstd or gzip"}},
		{"zstd level out of range", []string{"push", "--compression", "zstd", "--compression-level", "30", name}, 2, []string{"--compression-level 30", "zstd levels are 1 to 22"}},
		{"gzip level out of range", []string{"push", "--compression", "gzip", "--compression-level", "10", name}, 2, []string{"--compression-level 10", "gzip levels are 1 to 9"}},
		{"compression with referrers", []string{"push", "--compression", "zstd", "--referrers", name}, 2, []string{"--compression", "excludes --referrers"}},
		{"destination given twice", []string{"push", name, reg.Host + "/x:1", reg.Host + "/x:1"}, 2, []string{reg.Host + "/x:1 is named twice"}},
		{"unknown image", []string{"push", reg.Host + "/team/nope:1"}, 1, []string{reg.Host + "/team/nope:1", "not found", "ctrpush images"}},
		{"absent platform", []string{"push", "--platform", "linux/s390x", name}, 1, []string{"linux/s390x", "present: linux/amd64, linux/arm64"}},
		{"registry down", []string{"push", downHost + "/team/app:1.0"}, 1, []string{"registry " + downHost + " is unreachable"}},
		{"host without name in hosts.toml", []string{"--hosts-dir", badHosts, "push", name}, 1, []string{"registry configuration for " + reg.Host, "has no host name", badHosts}},
		{"archive names a tag only", []string{"import", tagOnly}, 1, []string{tagOnly, `names an image only by the tag "1.0", without its repository; give its repository with --base-name REPO`}},
		{"missing archive", []string{"import", "/nonexistent/image.tar"}, 1, []string{"/nonexistent/image.tar", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := countStore(t, root)
			reg.Reset(t)
			r := ctrpush(t, root, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, tc.code, r.stderr)
			}
			errLines := []string{}
			for _, l := range strings.Split(r.stderr, "\n") {
				if strings.HasPrefix(l, "ctrpush: ") {
					errLines = append(errLines, l)
				}
			}
			if len(errLines) != 1 {
				t.Fatalf("want one error line, got stderr:\n%s", r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(errLines[0], w) {
					t.Fatalf("error %q does not say %q", errLines[0], w)
				}
			}
			if r.stdout != "" {
				t.Fatalf("failed command printed results: %q", r.stdout)
			}
			if after := countStore(t, root); after != before {
				t.Fatalf("store changed: %+v → %+v", before, after)
			}
			for _, req := range reg.Requests(t) {
				if req.Method != "GET" && req.Method != "HEAD" {
					t.Fatalf("a failed command wrote to the registry: %+v", req)
				}
			}
		})
	}
}

func TestStoreInUse(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	importSample(t, root, "example.com/team/app:1.0", "1.0", 1)
	before := countStore(t, root)

	// Another process holding the metadata database in one transaction
	// for longer than the store timeout (other ctrpush processes hold it
	// only for theirs).
	ctx := namespaces.WithNamespace(t.Context(), imageservice.DefaultNamespace)
	held, err := store.OpenEmbedded(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	var r result
	if err := held.Batch(ctx, func(context.Context) error {
		r = ctrpush(t, root, "images")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = held.Close()
	if r.code != 1 || !strings.Contains(r.stderr, "store "+root+" is in use by another process") || !strings.Contains(r.stderr, "(--root)") {
		t.Fatalf("exit %d, stderr %q: want exit 1 saying the store %s is in use", r.code, r.stderr, root)
	}
	// It waits a while, not forever (generous bound: a slow CI machine).
	if r.elapsed < store.DefaultTimeout-time.Second || r.elapsed > store.DefaultTimeout+20*time.Second {
		t.Fatalf("gave up after %s (timeout %s)", r.elapsed, store.DefaultTimeout)
	}
	if after := countStore(t, root); after != before {
		t.Fatalf("store changed: %+v → %+v", before, after)
	}
}
