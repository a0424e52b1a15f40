package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/faultproxy"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testenv"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// Pushes of one image to several registries in one run, through the CLI
// (issue 24): every destination or none is tagged (unless --best-effort),
// the error and --metadata-file say where each destination stands, and the
// progress names the destination of each line.

// pushMetadataFile is what --metadata-file holds (cmd/ctrpush/metadata.go),
// read with unknown fields refused: the documented schema is the contract.
type pushMetadataFile struct {
	Source       string `json:"source"`
	Destinations []struct {
		Reference string   `json:"reference"`
		Digest    string   `json:"digest"`
		MediaType string   `json:"mediaType"`
		Size      int64    `json:"size"`
		Platforms []string `json:"platforms"`
		Original  string   `json:"original"`
		NewIndex  bool     `json:"newIndex"`
		Reduced   bool     `json:"reduced"`
		Referrers int      `json:"referrers"`
		// Signatures: push --sign.
		Signatures []struct {
			Format   string `json:"format"`
			Signer   string `json:"signer"`
			Where    string `json:"where"`
			Manifest string `json:"manifest"`
			Existing bool   `json:"existing"`
		} `json:"signatures"`
		Tagged *bool  `json:"tagged"`
		Error  string `json:"error"`
	} `json:"destinations"`
	Error string `json:"error"`
}

// readPushMetadata reads a --metadata-file.
func readPushMetadata(t *testing.T, path string) pushMetadataFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the metadata file: %v", err)
	}
	var m pushMetadataFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("the metadata file is not the documented JSON: %v\n%s", err, b)
	}
	for i, d := range m.Destinations {
		if d.Tagged == nil {
			t.Fatalf("destination %d (%s) has no \"tagged\" field:\n%s", i, d.Reference, b)
		}
	}
	return m
}

// craneDigest is what `crane digest` says ref's tag names, "" when crane
// was not built ($CTRPUSH_CRANE unset; the registry's own answer is
// checked anyway).
func craneDigest(t *testing.T, ref string) digest.Digest {
	t.Helper()
	crane := testenv.Tool(t, "CTRPUSH_CRANE", "crane digest")
	if crane == "" {
		return ""
	}
	out, err := exec.Command(crane, "digest", "--insecure", ref).CombinedOutput()
	if err != nil {
		t.Fatalf("crane digest %s: %v\n%s", ref, err, out)
	}
	return digest.Digest(strings.TrimSpace(string(out)))
}

// assertTagged checks, through the registry and through crane, that
// repo:tag on reg names d, and returns the size of the manifest served.
func assertTagged(t *testing.T, reg *registrytest.Registry, repo, tag string, d digest.Digest) int64 {
	t.Helper()
	got, _, body, ok := reg.Manifest(t, repo, tag)
	if !ok || got != d {
		t.Fatalf("%s/%s:%s is %q (there: %v), want %s", reg.Host, repo, tag, got, ok, d)
	}
	if cd := craneDigest(t, reg.Host+"/"+repo+":"+tag); cd != "" && cd != d {
		t.Fatalf("crane digest %s/%s:%s says %s, want %s", reg.Host, repo, tag, cd, d)
	}
	return int64(len(body))
}

// assertUntagged checks that reg holds no repo:tag.
func assertUntagged(t *testing.T, reg *registrytest.Registry, repo, tag string) {
	t.Helper()
	if d, _, _, ok := reg.Manifest(t, repo, tag); ok {
		t.Fatalf("%s/%s:%s is tagged (%s)", reg.Host, repo, tag, d)
	}
	if tags := reg.Tags(t, repo); slices.Contains(tags, tag) {
		t.Fatalf("%s/%s lists tag %s: %v", reg.Host, repo, tag, tags)
	}
}

// assertHoldsImage checks that reg's repo holds every platform manifest
// (by digest), config and layer of img, with img's bytes: everything but
// the index and its tag.
func assertHoldsImage(t *testing.T, reg *registrytest.Registry, repo string, img *testimage.Image) {
	t.Helper()
	for _, m := range img.Manifests {
		got, _, body, ok := reg.Manifest(t, repo, m.Descriptor.Digest.String())
		if !ok || got != m.Descriptor.Digest || !bytes.Equal(body, img.Blobs[m.Descriptor.Digest]) {
			t.Fatalf("%s/%s lacks the %s manifest %s", reg.Host, repo, platformString(m.Platform), m.Descriptor.Digest)
		}
		for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			data, ok := reg.Blob(t, repo, b.Digest)
			if !ok || digest.FromBytes(data) != b.Digest {
				t.Fatalf("%s/%s: blob %s (%s) missing or corrupt", reg.Host, repo, b.Digest, b.MediaType)
			}
		}
	}
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// errorLines are the lines of a DestinationsError in stderr, by
// destination: "  host/repo:tag: where it stands". It fails unless each
// destination has exactly one.
func errorLines(t *testing.T, stderr string, dests []string) []string {
	t.Helper()
	out := make([]string, len(dests))
	for i, d := range dests {
		n := 0
		for _, l := range strings.Split(stderr, "\n") {
			if strings.HasPrefix(l, "  "+d+": ") {
				out[i] = strings.TrimPrefix(l, "  "+d+": ")
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d error line(s) for %s, want one per destination; stderr:\n%s", n, d, stderr)
		}
	}
	return out
}

// One image (an index of two platforms) to distribution v3, Debian's
// distribution 2.8 and go-containerregistry in one `ctrpush push`: the dry
// run plans each destination and changes nothing; the push tags all
// three with the image's own index, which crane validates and names by
// the digest the metadata file gives, and its output names each
// destination on every line.
func TestPushToThreeRegistriesCLI(t *testing.T) {
	t.Parallel()
	v3, deb, ggcr := registrytest.Start(t), registrytest.StartDebian(t), registrytest.StartGGCR(t)
	regs := []*registrytest.Registry{v3, deb, ggcr}
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 64 << 10, Seed: 240})
	src := "example.com/multi/src:1"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", src, "1"))
	var dests []string
	for _, reg := range regs {
		dests = append(dests, reg.Host+"/multi/app:1")
	}

	// The dry run: one plan per destination, in order; nothing sent.
	v3.Reset(t)
	ggcr.Reset(t)
	dry := mustCtrpush(t, root, append([]string{"push", "--dry-run", src}, dests...)...)
	if n := strings.Count(dry.stdout, "(dry run)"); n != 3 {
		t.Fatalf("dry run: %d plans, want one per destination:\n%s", n, dry.stdout)
	}
	at := 0
	for _, reg := range regs {
		head := "The push refers to repository [" + reg.Host + "/multi/app] (dry run)\n"
		i := strings.Index(dry.stdout[at:], head)
		if i < 0 {
			t.Fatalf("dry run: no plan for %s after byte %d:\n%s", reg.Host, at, dry.stdout)
		}
		at += i + len(head)
	}
	if n := strings.Count(dry.stdout, "1: would push digest: "+img.Target.Digest.String()); n != 3 {
		t.Fatalf("dry run: %d plans would push the image's index %s, want 3:\n%s", n, img.Target.Digest, dry.stdout)
	}
	for _, reg := range regs {
		assertUntagged(t, reg, "multi/app", "1")
	}
	for _, reg := range []*registrytest.Registry{v3, ggcr} { // Debian's keeps no log
		for _, r := range reg.Requests(t) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				t.Fatalf("the dry run sent %s %s?%s to %s", r.Method, r.Path, r.Query, reg.Host)
			}
		}
	}

	meta := filepath.Join(t.TempDir(), "pushed.json")
	out := mustCtrpush(t, root, append([]string{"push", "--progress", "plain", "--metadata-file", meta, src}, dests...)...)

	m := readPushMetadata(t, meta)
	if m.Source != src || m.Error != "" || len(m.Destinations) != 3 {
		t.Fatalf("metadata: source %q, error %q, %d destinations; want %s, no error, 3", m.Source, m.Error, len(m.Destinations), src)
	}
	var wantLines []string
	for i, reg := range regs {
		craneValidate(t, dests[i])
		size := assertTagged(t, reg, "multi/app", "1", img.Target.Digest)
		assertPushed(t, reg, "multi/app", "1", img.Target.Digest)
		d := m.Destinations[i]
		if d.Reference != dests[i] || !*d.Tagged || d.Error != "" {
			t.Fatalf("metadata destination %d: %+v, want %s tagged without error", i, d, dests[i])
		}
		if d.Digest != img.Target.Digest.String() || d.MediaType != ocispec.MediaTypeImageIndex || d.Size != size {
			t.Fatalf("metadata for %s: %s %s size %d; the registry serves %s %s size %d",
				d.Reference, d.Digest, d.MediaType, d.Size, img.Target.Digest, ocispec.MediaTypeImageIndex, size)
		}
		if !slices.Equal(d.Platforms, []string{"linux/amd64", "linux/arm64"}) || d.Original != "" || d.NewIndex || d.Reduced || d.Referrers != 0 {
			t.Fatalf("metadata for %s: platforms %v, original %q, new index %v, reduced %v, referrers %d; want both platforms of the image's own index",
				d.Reference, d.Platforms, d.Original, d.NewIndex, d.Reduced, d.Referrers)
		}
		wantLines = append(wantLines, fmt.Sprintf("%s: digest: %s size: %d", dests[i], img.Target.Digest, size))
	}

	// stdout: one result line per destination, naming it.
	gotLines := strings.Split(strings.TrimRight(out.stdout, "\n"), "\n")
	sort.Strings(gotLines)
	sort.Strings(wantLines)
	if !slices.Equal(gotLines, wantLines) {
		t.Fatalf("stdout:\n%s\nwant the lines:\n%s", out.stdout, strings.Join(wantLines, "\n"))
	}
	// stderr: every line names its destination; each destination has its
	// "push refers" line and every blob and manifest of the image pushed.
	for _, l := range strings.Split(strings.TrimRight(out.stderr, "\n"), "\n") {
		if !slices.ContainsFunc(dests, func(d string) bool { return strings.HasPrefix(l, "["+d+"] ") }) {
			t.Fatalf("progress line %q names no destination; stderr:\n%s", l, out.stderr)
		}
	}
	for i, reg := range regs {
		pre := "[" + dests[i] + "] "
		want := []string{pre + "The push refers to repository [" + reg.Host + "/multi/app]"}
		for d := range img.Blobs {
			want = append(want, pre+progressID(d)+": Pushed")
		}
		for _, w := range want {
			if !strings.Contains(out.stderr, w+"\n") {
				t.Fatalf("stderr lacks %q:\n%s", w, out.stderr)
			}
		}
	}
}

// One destination of three refuses a layer (403 DENIED through a fault
// proxy in front of a real registry): the push exits 1, its error has one
// line per destination, no registry is tagged while the other two hold
// every blob and manifest, and the metadata file says so. With
// --best-effort the two healthy destinations are tagged (and -q prints
// them), the refusing one is not, and the push still exits 1.
func TestMultiPushFailureCLI(t *testing.T) {
	t.Parallel()
	for _, bestEffort := range []bool{false, true} {
		t.Run(fmt.Sprintf("best-effort=%v", bestEffort), func(t *testing.T) {
			t.Parallel()
			first, refusing, third := registrytest.Start(t), registrytest.Start(t), registrytest.StartGGCR(t)
			proxy := faultproxy.Start(t, refusing.Host)
			root := t.TempDir()
			img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 64 << 10, Seed: 241})
			src := "example.com/multi/src:1"
			mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", src, "1"))
			bad := img.Manifests[1].Layers[1].Digest
			proxy.SetRule(func(r *http.Request) faultproxy.Fault {
				if (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Query().Get("digest") == bad.String() {
					return faultproxy.Fault{Status: http.StatusForbidden, Code: "DENIED"}
				}
				return faultproxy.Fault{}
			})
			dests := []string{first.Host + "/multi/app:1", proxy.Host + "/multi/app:1", third.Host + "/multi/app:1"}
			healthy := map[int]*registrytest.Registry{0: first, 2: third}
			meta := filepath.Join(t.TempDir(), "pushed.json")
			args := []string{"push", "--progress", "plain", "--metadata-file", meta}
			if bestEffort {
				args = append(args, "--best-effort", "-q")
			}
			r := ctrpush(t, root, append(append(args, src), dests...)...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			if proxy.Injected() == 0 {
				t.Fatal("the proxy refused nothing: the test tested nothing")
			}
			if _, ok := refusing.Blob(t, "multi/app", bad); ok {
				t.Fatalf("the refused layer %s is in the refusing registry", bad)
			}

			lines := errorLines(t, r.stderr, dests)
			if l := strings.ToLower(lines[1]); !strings.Contains(l, "403") && !strings.Contains(l, "denied") {
				t.Fatalf("the refusing destination's line %q says neither 403 nor denied", lines[1])
			}
			assertUntagged(t, refusing, "multi/app", "1")
			m := readPushMetadata(t, meta)
			if m.Source != src || m.Error == "" || len(m.Destinations) != 3 {
				t.Fatalf("metadata: source %q, error %q, %d destinations; want %s, the error, 3", m.Source, m.Error, len(m.Destinations), src)
			}
			for i, d := range m.Destinations {
				if d.Reference != dests[i] {
					t.Fatalf("metadata destination %d is %s, want %s", i, d.Reference, dests[i])
				}
			}
			if d := m.Destinations[1]; *d.Tagged || (!strings.Contains(d.Error, "403") && !strings.Contains(strings.ToLower(d.Error), "denied")) {
				t.Fatalf("metadata for the refusing destination: tagged %v, error %q", *d.Tagged, d.Error)
			}

			var quiet []string
			for i, reg := range healthy {
				assertHoldsImage(t, reg, "multi/app", img)
				d := m.Destinations[i]
				if !bestEffort {
					assertUntagged(t, reg, "multi/app", "1")
					if !strings.Contains(lines[i], "not tagged") {
						t.Fatalf("%s: error line %q, want complete and not tagged", dests[i], lines[i])
					}
					if *d.Tagged || !strings.Contains(d.Error, "not tagged") {
						t.Fatalf("metadata for %s: tagged %v, error %q; want not tagged, saying so", dests[i], *d.Tagged, d.Error)
					}
					continue
				}
				assertTagged(t, reg, "multi/app", "1", img.Target.Digest)
				if lines[i] != "tagged "+img.Target.Digest.String() {
					t.Fatalf("%s: error line %q, want tagged %s", dests[i], lines[i], img.Target.Digest)
				}
				if !*d.Tagged || d.Error != "" || d.Digest != img.Target.Digest.String() {
					t.Fatalf("metadata for %s: tagged %v, digest %s, error %q; want tagged %s", dests[i], *d.Tagged, d.Digest, d.Error, img.Target.Digest)
				}
				quiet = append(quiet, dests[i])
			}
			sort.Strings(quiet)
			got := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
			sort.Strings(got)
			if !bestEffort && r.stdout != "" || bestEffort && !slices.Equal(got, quiet) {
				t.Fatalf("stdout %q, want %q", r.stdout, quiet)
			}
		})
	}
}

// The JSON stream of a push to two registries: every line is JSON, every
// message carries the destination it is about (one of the two), and each
// destination gets its Pushed lines, its "digest:" line and its aux. A
// push to one destination carries no "destination" field at all: Docker's
// stream, unchanged.
func TestMultiPushJSONCarriesDestination(t *testing.T) {
	t.Parallel()
	v3, ggcr := registrytest.Start(t), registrytest.StartGGCR(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 64 << 10, Seed: 242})
	src := "example.com/multi/src:1"
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", src, "1"))
	dests := []string{v3.Host + "/multi/app:1", ggcr.Host + "/multi/app:1"}
	r := mustCtrpush(t, root, "push", "--progress", "json", src, dests[0], dests[1])
	if r.stderr != "" {
		t.Fatalf("json mode wrote to stderr: %q", r.stderr)
	}
	size := assertTagged(t, v3, "multi/app", "1", img.Target.Digest)
	assertTagged(t, ggcr, "multi/app", "1", img.Target.Digest)

	type message struct {
		ID          string          `json:"id"`
		Status      string          `json:"status"`
		Aux         json.RawMessage `json:"aux"`
		Destination *string         `json:"destination"`
	}
	pushed := map[string]bool{} // "dest id"
	digestLine := map[string]int{}
	auxes := map[string]int{}
	for _, line := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
		var msg message
		if err := json.Unmarshal([]byte(line), &msg); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		if msg.Destination == nil || !slices.Contains(dests, *msg.Destination) {
			t.Fatalf("message %s does not name one of the destinations %v", line, dests)
		}
		dest := *msg.Destination
		if msg.ID != "" && msg.Status == "Pushed" {
			pushed[dest+" "+msg.ID] = true
		}
		if msg.Status == fmt.Sprintf("%s: digest: %s size: %d", dest, img.Target.Digest, size) {
			digestLine[dest]++
		}
		if msg.Aux != nil {
			var a struct {
				Tag    string
				Digest string
				Size   int64
			}
			if err := json.Unmarshal(msg.Aux, &a); err != nil {
				t.Fatal(err)
			}
			if a.Tag != "1" || a.Digest != img.Target.Digest.String() || a.Size != size {
				t.Fatalf("aux for %s: %s, want Tag 1, Digest %s, Size %d", dest, msg.Aux, img.Target.Digest, size)
			}
			auxes[dest]++
		}
	}
	for _, dest := range dests {
		if digestLine[dest] != 1 || auxes[dest] != 1 {
			t.Fatalf("%s: %d digest line(s) and %d aux(es), want one each:\n%s", dest, digestLine[dest], auxes[dest], r.stdout)
		}
		for d := range img.Blobs {
			if !pushed[dest+" "+progressID(d)] {
				t.Fatalf("no Pushed message for %s of %s:\n%s", progressID(d), dest, r.stdout)
			}
		}
	}

	// One destination: no "destination" anywhere.
	one := mustCtrpush(t, root, "push", "--progress", "json", src, v3.Host+"/single/app:1")
	assertPushed(t, v3, "single/app", "1", img.Target.Digest)
	sawAux := false
	for _, line := range strings.Split(strings.TrimRight(one.stdout, "\n"), "\n") {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		if _, ok := fields["destination"]; ok || strings.Contains(line, `"destination"`) {
			t.Fatalf("a push to one destination carries a destination field: %s", line)
		}
		if _, ok := fields["aux"]; ok {
			sawAux = true
		}
		if s := string(fields["status"]); strings.Contains(s, "digest: ") && !strings.HasPrefix(s, `"1: digest: `+img.Target.Digest.String()) {
			t.Fatalf("result line %s, want Docker's \"1: digest: …\"", s)
		}
	}
	if !sawAux {
		t.Fatalf("no aux in the push to one destination:\n%s", one.stdout)
	}
}

// --metadata-file for a push to one destination: one entry, tagged, with
// the digest the registry serves; a push that cannot reach its registry
// still writes the file, with the error, whether the destination is given
// or is the source's own name.
func TestMetadataFileSingleDestination(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	down := registrytest.RefusingHost(t)
	root := t.TempDir()
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, LayerSize: 64 << 10, Seed: 243})
	src := down + "/single/app:1" // the source's own registry is down
	mustCtrpush(t, root, "import", writeArchive(t, img, "oci-tar", src, "1"))

	dest := reg.Host + "/single/app:1"
	meta := filepath.Join(t.TempDir(), "pushed.json")
	mustCtrpush(t, root, "push", "--metadata-file", meta, src, dest)
	size := assertTagged(t, reg, "single/app", "1", img.Target.Digest)
	m := readPushMetadata(t, meta)
	if m.Source != src || m.Error != "" || len(m.Destinations) != 1 {
		t.Fatalf("metadata: source %q, error %q, %d destinations; want %s, no error, 1", m.Source, m.Error, len(m.Destinations), src)
	}
	d := m.Destinations[0]
	if d.Reference != dest || !*d.Tagged || d.Error != "" || d.Digest != img.Target.Digest.String() ||
		d.MediaType != ocispec.MediaTypeImageIndex || d.Size != size || !slices.Equal(d.Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("metadata destination %+v; want %s tagged %s (%s, %d bytes, both platforms)", d, dest, img.Target.Digest, ocispec.MediaTypeImageIndex, size)
	}

	for _, tc := range []struct {
		name string
		args []string
		ref  string
	}{
		{"destination unreachable", []string{src, down + "/other/app:1"}, down + "/other/app:1"},
		{"source's own registry unreachable", []string{src}, src},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := filepath.Join(t.TempDir(), "pushed.json")
			r := ctrpush(t, root, append([]string{"push", "--metadata-file", meta}, tc.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, "unreachable") {
				t.Fatalf("exit %d, want 1 saying the registry is unreachable:\n%s", r.code, r.stderr)
			}
			m := readPushMetadata(t, meta)
			if m.Source != src || !strings.Contains(m.Error, "unreachable") || len(m.Destinations) != 1 {
				t.Fatalf("metadata: source %q, error %q, %d destinations; want %s, the error, 1", m.Source, m.Error, len(m.Destinations), src)
			}
			d := m.Destinations[0]
			if d.Reference != tc.ref || *d.Tagged || !strings.Contains(d.Error, "unreachable") {
				t.Fatalf("metadata destination %+v; want %s not tagged, with the error", d, tc.ref)
			}
		})
	}
}
