package integration

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestImagesAsDocker: `ctrpush images` prints docker's columns, one line
// per name, short IDs; -q, --no-trunc, --digests, --format (templates,
// table, json), --filter reference=, the REPOSITORY argument; --long keeps
// the store's view (platforms present and missing, media type, referrers).
func TestImagesAsDocker(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	app := importSample(t, root, "example.com/team/app:1.0", "1.0", 1)
	tool := importSample(t, root, "example.com/other/tool:3", "3", 2)
	mustCtrpush(t, root, "tag", "example.com/team/app:1.0", "app")
	mustCtrpush(t, root, "tag", "example.com/team/app:1.0", "app:2")
	appID, toolID := app.Target.Digest.Encoded()[:12], tool.Target.Digest.Encoded()[:12]
	lines := func(args ...string) []string {
		t.Helper()
		out := mustCtrpush(t, root, append([]string{"images"}, args...)...).stdout
		return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	}
	fields := func(l string) []string { return regexp.MustCompile(`\s{3,}`).Split(l, -1) }

	def := lines()
	if !slices.Equal(fields(def[0]), []string{"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"}) || len(def) != 5 {
		t.Fatalf("images:\n%s", strings.Join(def, "\n"))
	}
	want := [][]string{{"app", "2", appID}, {"app", "latest", appID}, {"example.com/other/tool", "3", toolID}, {"example.com/team/app", "1.0", appID}}
	for i, w := range want {
		f := fields(def[i+1])
		if len(f) != 5 || !slices.Equal(f[:3], w) || !strings.HasSuffix(f[3], " ago") || !strings.HasSuffix(f[4], "B") {
			t.Errorf("images line %d: %q, want %v, a time ago and a size", i+1, def[i+1], w)
		}
	}
	for _, l := range def {
		if len(l) > 100 {
			t.Errorf("images line is %d columns wide: %q", len(l), l)
		}
	}

	if q := lines("-q"); !slices.Equal(q, []string{appID, toolID}) {
		t.Errorf("images -q: %q, want each ID once", q)
	}
	if q := lines("-q", "--no-trunc"); !slices.Equal(q, []string{app.Target.Digest.String(), tool.Target.Digest.String()}) {
		t.Errorf("images -q --no-trunc: %q", q)
	}
	if d := lines("--digests", "example.com/other/tool"); len(d) != 2 || !slices.Equal(fields(d[0])[:4], []string{"REPOSITORY", "TAG", "DIGEST", "IMAGE ID"}) ||
		!slices.Equal(fields(d[1])[:4], []string{"example.com/other/tool", "3", tool.Target.Digest.String(), toolID}) {
		t.Errorf("images --digests REPOSITORY:\n%s", strings.Join(d, "\n"))
	}
	if f := lines("--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "--no-trunc", "--filter", "reference=app"); !slices.Equal(f, []string{"app:2 " + app.Target.Digest.String(), "app:latest " + app.Target.Digest.String()}) {
		t.Errorf("images --format --filter reference=app: %q", f)
	}
	if f := lines("--format", "{{.Repository}}:{{.Tag}}", "-f", "reference=*/team/*:1.*", "-f", "reference=*/other/*"); !slices.Equal(f, []string{"example.com/other/tool:3", "example.com/team/app:1.0"}) {
		t.Errorf("two reference filters: %q", f)
	}
	if f := lines("--format", "table {{.Repository}}\t{{.Platforms}}", "app:2"); len(f) != 2 || !slices.Equal(fields(f[0]), []string{"REPOSITORY", "PLATFORMS"}) || !slices.Equal(fields(f[1]), []string{"app", "linux/amd64,linux/arm64"}) {
		t.Errorf("images --format table REPOSITORY:TAG: %q", f)
	}
	if f := lines("-f", "reference=nothing*"); len(f) != 1 {
		t.Errorf("a filter nothing matches: %q", f)
	}

	var rows []map[string]string
	for _, l := range lines("--format", "json") {
		var m map[string]string
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("images --format json line %q: %v", l, err)
		}
		rows = append(rows, m)
	}
	if len(rows) != 4 || rows[2]["Repository"] != "example.com/other/tool" || rows[2]["Tag"] != "3" || rows[2]["ID"] != toolID ||
		rows[2]["Digest"] != tool.Target.Digest.String() || rows[2]["MediaType"] != ocispec.MediaTypeImageIndex || rows[2]["Platforms"] != "linux/amd64,linux/arm64" {
		t.Errorf("images --format json: %v", rows)
	}

	long := lines("--long", "example.com/team/app")
	if len(long) != 2 || !slices.Equal(fields(long[0]), []string{"NAME", "IMAGE ID", "MEDIA TYPE", "PLATFORMS", "MISSING", "SIZE", "REFERRERS"}) {
		t.Fatalf("images --long:\n%s", strings.Join(long, "\n"))
	}
	if f := fields(long[1]); len(f) != 7 || f[0] != "example.com/team/app:1.0" || f[1] != app.Target.Digest.String() || f[2] != ocispec.MediaTypeImageIndex || f[3] != "linux/amd64,linux/arm64" || f[4] != "-" || f[6] != "0" {
		t.Errorf("images --long line: %q", f)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--filter", "label=x"}, `--filter "label": ctrpush filters images by reference and dangling only`},
		{[]string{"--filter", "reference"}, "give KEY=VALUE"},
		{[]string{"--format", "{{.Nope}}"}, "the fields are .Repository"},
		{[]string{"-q", "--format", "{{.ID}}"}, "drop --quiet or --format"},
		{[]string{"a", "b"}, "at most one REPOSITORY[:TAG]"},
	} {
		r := ctrpush(t, root, append([]string{"images"}, bad.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, bad.want) || r.stdout != "" {
			t.Errorf("images %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", bad.args, r.code, r.stdout, r.stderr, bad.want)
		}
	}
}
