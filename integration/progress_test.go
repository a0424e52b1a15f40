package integration

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/jsonstream"

	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// progressScenario pushes one deterministic image fresh, again, and to a
// second repository (mount), with --progress mode; it returns each run's
// stdout and stderr with the registry's address replaced by REGISTRY.
func progressScenario(t *testing.T, mode string) (out string) {
	t.Helper()
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 64 << 10, SharedLayers: 1, Seed: 11})
	name := reg.Host + "/prog/a:1.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
	var b strings.Builder
	for _, step := range []struct{ title, dest string }{
		{"fresh push", name},
		{"re-push", name},
		{"push to a second repository (mount)", reg.Host + "/prog/b:1.0"},
	} {
		r := mustCtrpush(t, root, "push", "--progress", mode, name, step.dest)
		b.WriteString("## " + step.title + "\n# stdout\n" + normalize(r.stdout, mode) + "# stderr\n" + normalize(r.stderr, mode))
	}
	return strings.ReplaceAll(b.String(), reg.Host, "REGISTRY")
}

var plainID = regexp.MustCompile(`^([0-9a-f]{12}): `)

// normalize sorts what concurrency may interleave: lines without a blob
// id keep their order and come first, then each blob's lines, in order,
// blobs sorted by id. Nothing else (no timing field) varies here: the blobs
// are small enough to be written in one piece.
func normalize(s, mode string) string {
	var plain []string
	byID := map[string][]string{}
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line == "" {
			continue
		}
		id := ""
		if mode == "json" {
			var m struct{ ID string }
			_ = json.Unmarshal([]byte(line), &m)
			id = m.ID
		} else if m := plainID.FindStringSubmatch(line); m != nil {
			id = m[1]
		}
		if id == "" {
			plain = append(plain, line)
			continue
		}
		byID[id] = append(byID[id], line)
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		plain = append(plain, byID[id]...)
	}
	if len(plain) == 0 {
		return ""
	}
	return strings.Join(plain, "\n") + "\n"
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if string(want) != got {
		t.Fatalf("output differs from %s (rerun with -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestProgressPlainGolden(t *testing.T) {
	t.Parallel()
	got := progressScenario(t, "plain")
	if strings.ContainsAny(got, "\r\x1b") {
		t.Fatal("plain output has carriage returns or escape codes")
	}
	golden(t, "progress-plain.golden", got)
}

func TestProgressJSONGolden(t *testing.T) {
	t.Parallel()
	got := progressScenario(t, "json")
	golden(t, "progress-json.golden", got)
}

// The JSON stream, read by the Docker Engine API's own message type: every
// line decodes, stdout holds nothing else, byte counts never pass 100% and
// end at the blob's size, and the aux carries Tag, Digest and Size.
func TestProgressJSONReadByDockerTypes(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, LayerSize: 3 << 20, Seed: 12})
	name := reg.Host + "/prog/json:2.0"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", name, "2.0"))
	r := mustCtrpush(t, root, "push", "--progress", "json", name)

	sizes := map[string]int64{}
	for d, b := range img.Blobs {
		sizes[d.Encoded()[:12]] = int64(len(b))
	}
	last := map[string]int64{}
	var status []string
	var aux []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m jsonstream.Message
		dec := json.NewDecoder(bytes.NewReader([]byte(line)))
		dec.DisallowUnknownFields()
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not a Docker JSON message: %v", line, err)
		}
		if m.Error != nil {
			t.Fatalf("error in a successful push: %+v", m.Error)
		}
		if m.Aux != nil {
			var a map[string]any
			if err := json.Unmarshal(*m.Aux, &a); err != nil {
				t.Fatal(err)
			}
			aux = append(aux, a)
			continue
		}
		status = append(status, m.Status)
		if m.Progress != nil && m.Progress.Total > 0 {
			if m.Progress.Current > m.Progress.Total {
				t.Fatalf("%s shows %d of %d bytes", m.ID, m.Progress.Current, m.Progress.Total)
			}
			if m.Progress.Total != sizes[m.ID] {
				t.Fatalf("%s total %d, blob size %d", m.ID, m.Progress.Total, sizes[m.ID])
			}
			last[m.ID] = m.Progress.Current
		}
	}
	if status[0] != "The push refers to repository ["+reg.Host+"/prog/json]" {
		t.Fatalf("first status %q", status[0])
	}
	for id, n := range last {
		if n != sizes[id] {
			t.Fatalf("%s ended at %d bytes of %d", id, n, sizes[id])
		}
	}
	if len(last) != len(img.Blobs) {
		t.Fatalf("byte counts for %d transfers, the image has %d blobs", len(last), len(img.Blobs))
	}
	if len(aux) != 1 || aux[0]["Tag"] != "2.0" || aux[0]["Digest"] != img.Target.Digest.String() || aux[0]["Size"] != float64(img.Target.Size) {
		t.Fatalf("aux %v", aux)
	}
	if r.stderr != "" {
		t.Fatalf("json mode wrote to stderr: %q", r.stderr)
	}
}
