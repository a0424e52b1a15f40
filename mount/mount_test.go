package mount

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

func TestLabelKeyAndHost(t *testing.T) {
	for registry, host := range map[string]string{
		"registry.example.com":      "registry.example.com",
		"registry.example.com:5000": "registry.example.com",
		"127.0.0.1:5000":            "127.0.0.1",
		"[::1]:5000":                "::1",
		"[fe80::1%eth0]:443":        "fe80::1%eth0",
		"::1":                       "::1",
		"[::1]":                     "::1",
		"localhost":                 "localhost",
		"docker.io":                 "docker.io",
	} {
		key := LabelKey(registry)
		if key != "containerd.io/distribution.source."+host {
			t.Errorf("LabelKey(%q) = %q, want host %q", registry, key, host)
		}
		got, ok := ParseKey(key)
		if !ok || got != host {
			t.Errorf("ParseKey(LabelKey(%q)) = %q, %v; want %q", registry, got, ok, host)
		}
	}
	// The prefix ends with a dot: a key without it is not ours.
	for _, k := range []string{"containerd.io/distribution.sourcedocker.io", "containerd.io/distribution.source.", "containerd.io/gc.ref.content.l.0"} {
		if h, ok := ParseKey(k); ok {
			t.Errorf("ParseKey(%q) = %q, true", k, h)
		}
	}
}

func TestRepoValuesRoundTrip(t *testing.T) {
	cases := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"b/x", "a/y", "b/x"}, "a/y,b/x"},
		{[]string{"library/redis"}, "library/redis"},
		{[]string{"", "z", "a", "z"}, "a,z"},
	}
	for _, tc := range cases {
		v := JoinRepos(tc.in)
		if v != tc.want {
			t.Errorf("JoinRepos(%q) = %q, want %q", tc.in, v, tc.want)
		}
		if again := JoinRepos(Repos(v)); again != v {
			t.Errorf("round trip of %q gave %q", v, again)
		}
	}
	if v := AppendRepo("a,c", "b"); v != "a,b,c" {
		t.Errorf("AppendRepo = %q", v)
	}
	if v := AppendRepo("a,b", "b"); v != "a,b" {
		t.Errorf("AppendRepo duplicate = %q", v)
	}
	if v := RemoveRepo("a,b,c", "b"); v != "a,c" {
		t.Errorf("RemoveRepo = %q", v)
	}
	if v := RemoveRepo("a", "a"); v != "" {
		t.Errorf("RemoveRepo last = %q", v)
	}
	// containerd's own writer makes the same value for the same appends.
	if v := AppendRepo(AppendRepo(AppendRepo("", "team/b"), "team/a"), "team/b"); v != "team/a,team/b" {
		t.Errorf("appends = %q", v)
	}
}

func TestFitsLabelSizeLimit(t *testing.T) {
	key := LabelKey("registry.example.com")
	long := strings.Repeat("r", 4096-len(key))
	if !Fits(key, long) {
		t.Error("a value exactly at the limit must fit")
	}
	if Fits(key, long+"x") {
		t.Error("a value over the limit must not fit")
	}
}

func TestCandidates(t *testing.T) {
	sources := map[string]string{
		LabelKey("reg.example.com:5000"): "other/base,team/app,team/base,team/sub/x,zzz/y",
		LabelKey("elsewhere.io"):         "team/base",
	}
	got := Candidates(sources, "reg.example.com:5000", "team/app")
	want := []string{"team/base", "team/sub/x", "other/base"}
	if !slices.Equal(got, want) {
		t.Fatalf("Candidates = %q, want %q (longest common prefix first, never the target, at most 3)", got, want)
	}
	if c := Candidates(sources, "nowhere.io", "team/app"); c != nil {
		t.Fatalf("candidates for an unknown registry: %q", c)
	}
	if !Listed(sources, "reg.example.com", "team/app") || Listed(sources, "reg.example.com", "team/nope") {
		t.Fatal("Listed")
	}
}

func TestCanBeMounted(t *testing.T) {
	n := func(s string) reference.Named { r, _ := reference.ParseNormalizedNamed(s); return r }
	cases := []struct {
		mediaType      string
		target, source string
		want           bool
	}{
		{ocispec.MediaTypeImageLayerGzip, "reg.io/team/app", "reg.io/team/base", true},
		{ocispec.MediaTypeImageConfig, "reg.io/team/app", "reg.io/team/base", true},
		{ocispec.MediaTypeImageManifest, "reg.io/team/app", "reg.io/team/base", false},
		{ocispec.MediaTypeImageIndex, "reg.io/team/app", "reg.io/team/base", false},
		{"application/vnd.docker.distribution.manifest.v2+json", "reg.io/team/app", "reg.io/team/base", false},
		{ocispec.MediaTypeImageLayerGzip, "reg.io/team/app", "other.io/team/base", false},
		{ocispec.MediaTypeImageLayerGzip, "reg.io:5000/team/app", "reg.io:5001/team/base", false},
		{ocispec.MediaTypeImageLayerGzip, "reg.io/team/app", "reg.io/team/app", false},
	}
	for _, tc := range cases {
		if got := CanBeMounted(tc.mediaType, n(tc.target), n(tc.source)); got != tc.want {
			t.Errorf("CanBeMounted(%s, %s, %s) = %v", tc.mediaType, tc.target, tc.source, got)
		}
	}
}

// testStore is containerd's metadata content store over a local store.
func testStore(t *testing.T) (context.Context, content.Store) {
	t.Helper()
	_ = log.SetLevel("error")
	dir := t.TempDir()
	cs, err := local.NewStore(dir + "/content")
	if err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(dir+"/meta.db", 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bdb.Close() })
	db := metadata.NewDB(bdb, cs, nil)
	if err := db.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	return namespaces.WithNamespace(t.Context(), "test"), db.ContentStore()
}

func write(t *testing.T, ctx context.Context, cs content.Store, mediaType string, b []byte, labels map[string]string) ocispec.Descriptor {
	t.Helper()
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(ctx, cs, d.Digest.String(), bytes.NewReader(b), d, content.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	return d
}

func blobDesc(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// image writes an index of two manifests; the layers of the second are
// only described, not written (a platform pulled without its layers).
func image(t *testing.T, ctx context.Context, cs content.Store, indexLabels, manifestLabels map[string]string) (index ocispec.Descriptor, present, missing []ocispec.Descriptor) {
	t.Helper()
	var manifests []ocispec.Descriptor
	for i := 0; i < 2; i++ {
		cfg := []byte(fmt.Sprintf(`{"architecture":"a%d","os":"linux"}`, i))
		layer := []byte(fmt.Sprintf("layer %d", i))
		cd, ld := blobDesc(ocispec.MediaTypeImageConfig, cfg), blobDesc(ocispec.MediaTypeImageLayerGzip, layer)
		if i == 0 {
			write(t, ctx, cs, cd.MediaType, cfg, nil)
			write(t, ctx, cs, ld.MediaType, layer, nil)
			present = append(present, cd, ld)
		} else {
			write(t, ctx, cs, cd.MediaType, cfg, nil)
			present = append(present, cd)
			missing = append(missing, ld)
		}
		mb, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{ld}})
		md := write(t, ctx, cs, ocispec.MediaTypeImageManifest, mb, manifestLabels)
		present = append(present, md)
		manifests = append(manifests, md)
	}
	ib, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests})
	index = write(t, ctx, cs, ocispec.MediaTypeImageIndex, ib, indexLabels)
	return index, append(present, index), missing
}

func TestKnownAndNotMountedError(t *testing.T) {
	reg := "reg.example.com:5000"
	sources := map[string]string{LabelKey(reg): "team/base", LabelKey("other.io"): "x/y"}
	if !Known(sources, reg) || !Known(sources, "other.io:443") || Known(sources, "elsewhere.io") || Known(nil, reg) {
		t.Fatal("Known answers wrong")
	}
	err := error(&NotMountedError{Digest: digest.FromString("x"), Registry: reg, Candidates: Repos(sources[LabelKey(reg)])})
	var nm *NotMountedError
	if !errors.As(err, &nm) || !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "team/base") || !strings.Contains(err.Error(), "pull") {
		t.Fatalf("NotMountedError: %v", err)
	}
}

func TestWriteBackAndDropSource(t *testing.T) {
	ctx, cs := testStore(t)
	reg := "[::1]:5000"
	_, present, missing := image(t, ctx, cs, nil, nil)
	var digests []digest.Digest
	for _, d := range append(present, missing...) { // missing blobs are skipped
		digests = append(digests, d.Digest)
	}
	n, err := WriteBack(ctx, cs, digests, reg, "team/app", 4)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(present) {
		t.Fatalf("wrote %d labels, want %d (every present descriptor)", n, len(present))
	}
	for _, d := range present {
		info, err := cs.Info(ctx, d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if info.Labels["containerd.io/distribution.source.::1"] != "team/app" {
			t.Fatalf("%s labels %v", d.Digest, info.Labels)
		}
	}
	// Again with another repository: appended, sorted; again with the same: unchanged.
	if _, err := WriteBack(ctx, cs, digests, reg, "team/aaa", 1); err != nil {
		t.Fatal(err)
	}
	if n, _ := WriteBack(ctx, cs, digests, reg, "team/aaa", 1); n != 0 {
		t.Fatalf("re-writing the same repository changed %d labels", n)
	}
	info, _ := cs.Info(ctx, present[0].Digest)
	if v := info.Labels[LabelKey(reg)]; v != "team/aaa,team/app" {
		t.Fatalf("label %q", v)
	}

	if err := DropSource(ctx, cs, present[0].Digest, reg, "team/aaa"); err != nil {
		t.Fatal(err)
	}
	if err := DropSource(ctx, cs, present[0].Digest, reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	info, _ = cs.Info(ctx, present[0].Digest)
	if v, ok := info.Labels[LabelKey(reg)]; ok {
		t.Fatalf("label still %q after dropping every repository", v)
	}
}

func TestWriteBackSkipsOversizedLabel(t *testing.T) {
	ctx, cs := testStore(t)
	reg := "reg.example.com"
	key := LabelKey(reg)
	full := strings.Repeat("r", 4096-len(key)-2)
	d := write(t, ctx, cs, ocispec.MediaTypeImageLayerGzip, []byte("layer"), map[string]string{key: full})
	n, err := WriteBack(ctx, cs, []digest.Digest{d.Digest}, reg, "team/app", 1)
	if err != nil || n != 0 {
		t.Fatalf("WriteBack over the limit: n=%d err=%v, want it skipped without error", n, err)
	}
	info, _ := cs.Info(ctx, d.Digest)
	if info.Labels[key] != full {
		t.Fatal("label changed")
	}
}
