package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// docker import through the SDK: a gzipped root filesystem becomes an
// image of one layer (stored as it came) with the platform, message and
// changes asked for, answered with {"status":"sha256:ID"}; a change that
// is not allowed and a body that is not a tar are errors leaving nothing;
// without a repository the image is dangling.
func TestImportWithSDK(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	ctx := namespaces.WithNamespace(t.Context(), "test")
	c, err := client.New(client.WithHost("unix://" + f.sock))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	plain := testimage.RootFS()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(plain)
	_ = zw.Close()
	name := "registry.example/team/imp:1.0"

	imp := func(body []byte, ref string, opts client.ImageImportOptions) (string, error) {
		t.Helper()
		resp, err := c.ImageImport(t.Context(), client.ImageImportSource{Source: bytes.NewReader(body), SourceName: "-"}, ref, opts)
		if err != nil {
			return "", err
		}
		defer resp.Close()
		b, err := io.ReadAll(resp)
		return string(b), err
	}
	blobs := func() int {
		n := 0
		_ = f.store.ContentStore().Walk(ctx, func(content.Info) error { n++; return nil })
		return n
	}

	for body, want := range map[string]string{
		"RUN echo hi":    "run is not a valid change command",
		"ONBUILD RUN x":  "ONBUILD in a change is not supported",
		"EXPOSE 80/icmp": `EXPOSE: invalid proto "icmp"`,
	} {
		if _, err := imp(gz.Bytes(), name, client.ImageImportOptions{Changes: []string{body}}); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("import with change %q: %v", body, err)
		}
	}
	if _, err := imp([]byte(strings.Repeat("not a tar archive ", 64)), name, client.ImageImportOptions{}); err == nil || !strings.Contains(err.Error(), "the root filesystem is not a tar archive") {
		t.Fatalf("import of garbage: %v", err)
	}
	if imgs, err := f.svc.Images(ctx); err != nil || len(imgs) != 0 || blobs() != 0 {
		t.Fatalf("failed imports left %d images, %d blobs (%v)", len(imgs), blobs(), err)
	}

	out, err := imp(gz.Bytes(), name, client.ImageImportOptions{
		Message:  "imported for a test",
		Platform: platforms.MustParse("linux/arm64"),
		Changes: []string{
			`CMD ["/bin/hello", "--loud"]`, `ENTRYPOINT ["/bin/sh", "-c"]`, `ENV PATH=/bin A="two words"`, `ENV B=$A`,
			`WORKDIR /srv`, `WORKDIR app`, `USER 1000:1000`, `LABEL org.example.team=imp "with space"=yes`, `EXPOSE 80 8000-8001/udp`,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var m jsonstream.Message
	if err := json.Unmarshal([]byte(out), &m); err != nil || !strings.HasPrefix(m.Status, "sha256:") {
		t.Fatalf("import answer: %q %v", out, err)
	}
	img, err := f.svc.Image(ctx, name)
	if err != nil || img.Target.Digest.String() != m.Status || img.Target.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("imported image: %+v %v (answer %s)", img.Target, err, m.Status)
	}
	p := platforms.MustParse("linux/arm64")
	in, err := c.ImageInspect(t.Context(), name, client.ImageInspectWithPlatform(&p))
	if err != nil {
		t.Fatal(err)
	}
	cfg := in.Config
	if in.Architecture != "arm64" || in.Os != "linux" || len(in.RootFS.Layers) != 1 || in.RootFS.Layers[0] != digest.FromBytes(plain).String() ||
		strings.Join(cfg.Cmd, " ") != "/bin/hello --loud" || strings.Join(cfg.Entrypoint, " ") != "/bin/sh -c" ||
		strings.Join(cfg.Env, ",") != "PATH=/bin,A=two words,B=two words" || cfg.WorkingDir != "/srv/app" || cfg.User != "1000:1000" ||
		cfg.Labels["org.example.team"] != "imp" || cfg.Labels["with space"] != "yes" || len(cfg.ExposedPorts) != 3 {
		t.Fatalf("inspect of the imported image: %s/%s rootfs %v config %+v", in.Os, in.Architecture, in.RootFS.Layers, cfg)
	}
	h, err := c.ImageHistory(t.Context(), name, client.ImageHistoryWithPlatform(p))
	if err != nil || len(h.Items) != 1 || h.Items[0].Comment != "imported for a test" || h.Items[0].Size != int64(gz.Len()) {
		t.Fatalf("history: %+v %v (layer %d bytes)", h, err, gz.Len())
	}

	// No repository: a dangling image, found by its ID.
	out, err = imp(plain, "", client.ImageImportOptions{})
	if err != nil || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("import without a repository: %q %v", out, err)
	}
	list, err := c.ImageList(t.Context(), client.ImageListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range list.Items {
		if s.ID == m.Status {
			found = len(s.RepoTags) == 0
		}
	}
	if !found {
		t.Fatalf("the image imported without a repository is not listed untagged as %s: %+v", m.Status, list.Items)
	}

	// docker import URL: downloaded from there, the same image as from the
	// body; a URL that answers 404 is an error naming it, leaving nothing.
	files := http.FileServer(http.Dir(t.TempDir()))
	var served atomic.Int64
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/rootfs.tar.gz" {
			served.Add(1)
			_, _ = w.Write(gz.Bytes())
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer web.Close()
	fromURL := func(src, ref string) (string, error) {
		resp, err := c.ImageImport(t.Context(), client.ImageImportSource{SourceName: src}, ref, client.ImageImportOptions{Platform: platforms.MustParse("linux/arm64"), Message: "imported for a test"})
		if err != nil {
			return "", err
		}
		defer resp.Close()
		b, err := io.ReadAll(resp)
		return string(b), err
	}
	stream, err := fromURL(web.URL+"/rootfs.tar.gz", "registry.example/team/url:1.0")
	if err != nil || served.Load() != 1 || !strings.Contains(stream, `"status":"Downloading from `+web.URL+`/rootfs.tar.gz"`) {
		t.Fatalf("import from a URL (served %d times): %q %v", served.Load(), stream, err)
	}
	byURL, err := f.svc.Image(ctx, "registry.example/team/url:1.0")
	if err != nil || !strings.Contains(stream, `"status":"`+byURL.Target.Digest.String()+`"`) {
		t.Fatalf("the image imported from a URL: %+v %v; stream %q", byURL.Target, err, stream)
	}
	before := len(mustImages(t, f))
	if _, err := fromURL(strings.TrimPrefix(web.URL, "http://")+"/missing.tar", "registry.example/team/url:2.0"); err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Fatalf("import from a URL that answers 404 (no scheme: http): %v", err)
	}
	if after := len(mustImages(t, f)); after != before {
		t.Fatalf("a failed import from a URL left an image: %d images, were %d", after, before)
	}
	// docker images -f dangling=true lists it alone; =false leaves it out.
	for _, tc := range []struct {
		value string
		want  func(id string) bool
	}{{"true", func(id string) bool { return id == m.Status }}, {"false", func(id string) bool { return id != m.Status }}} {
		list, err := c.ImageList(t.Context(), client.ImageListOptions{Filters: make(client.Filters).Add("dangling", tc.value)})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 {
			t.Fatalf("dangling=%s listed nothing", tc.value)
		}
		for _, s := range list.Items {
			if !tc.want(s.ID) {
				t.Fatalf("dangling=%s listed %s %v", tc.value, s.ID, s.RepoTags)
			}
		}
	}
}

func mustImages(t *testing.T, f *fixture) []imageservice.ImageSummary {
	t.Helper()
	imgs, err := f.svc.Images(namespaces.WithNamespace(t.Context(), "test"))
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}
