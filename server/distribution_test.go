package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/moby/moby/client"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// A Docker SDK client (moby's client module) pulls an index from a real
// registry through the server (host platform's layers only, then "up to
// date"), fails to pull a missing tag with dockerd's words, reads history
// and inspects a platform, saves, removes and loads the image back with
// the same ID, and prunes what a forced removal left behind.
func TestDistributionWithSDK(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	reg := registrytest.Start(t)
	ctx := namespaces.WithNamespace(t.Context(), "test")
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, Seed: 183})
	name := reg.Host + "/team/app:1.0"
	f.add(t, img, name)
	if _, err := f.svc.Push(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Delete(ctx, name, imageservice.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.WithHost("unix://" + f.sock))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Pull: the index, the host's layers.
	msgs := pullMessages(t, c, name, nil)
	amd, arm := img.Platform("linux/amd64"), img.Platform("linux/arm64")
	// dockerd's order for a layer: Pulling fs layer, Waiting, Downloading,
	// Verifying Checksum, Download complete, Pull complete.
	id0 := amd.Layers[0].Digest.Encoded()[:12]
	last := -1
	for _, st := range []string{"Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete", "Pull complete"} {
		i := slices.Index(msgs, id0+" "+st)
		if i <= last {
			t.Fatalf("pull stream has no %q for %s after the previous state:\n%s", st, id0, strings.Join(msgs, "\n"))
		}
		last = i
	}
	for _, want := range []string{
		"1.0 Pulling from team/app",
		amd.Layers[0].Digest.Encoded()[:12] + " Pulling fs layer",
		amd.Layers[0].Digest.Encoded()[:12] + " Download complete",
		amd.Layers[1].Digest.Encoded()[:12] + " Pull complete",
		" Digest: " + img.Target.Digest.String(),
		" Status: Downloaded newer image for " + name,
	} {
		if !contains(msgs, want) {
			t.Fatalf("pull stream lacks %q:\n%s", want, strings.Join(msgs, "\n"))
		}
	}
	if got, err := f.svc.Image(ctx, name); err != nil || got.Target.Digest != img.Target.Digest {
		t.Fatalf("pulled image: %s %v", got.Target.Digest, err)
	}
	if _, err := f.store.ContentStore().Info(ctx, amd.Layers[1].Digest); err != nil {
		t.Fatalf("amd64 layer not pulled: %v", err)
	}
	if _, err := f.store.ContentStore().Info(ctx, arm.Layers[0].Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("arm64 layer pulled without being asked for: %v", err)
	}
	if msgs := pullMessages(t, c, name, nil); !contains(msgs, " Status: Image is up to date for "+name) ||
		!contains(msgs, amd.Layers[0].Digest.Encoded()[:12]+" Already exists") {
		t.Fatalf("second pull:\n%s", strings.Join(msgs, "\n"))
	}
	// --platform linux/arm64: its layers come too.
	pullMessages(t, c, name, []string{"linux/arm64"})
	if _, err := f.store.ContentStore().Info(ctx, arm.Layers[0].Digest); err != nil {
		t.Fatalf("arm64 layer not pulled with the platform asked for: %v", err)
	}
	_, err = c.ImagePull(t.Context(), reg.Host+"/team/app:nope", client.ImagePullOptions{})
	if err == nil || !strings.Contains(err.Error(), "manifest for "+reg.Host+"/team/app:nope not found: manifest unknown") {
		t.Fatalf("pull of a missing tag: %v", err)
	}

	for path, want := range map[string]string{
		"/v1.50/images/create?fromSrc=http://127.0.0.1:1/rootfs.tar":                   "download http://127.0.0.1:1/rootfs.tar",
		"/v1.50/images/create?fromSrc=ftp://127.0.0.1/rootfs.tar":                      "invalid import source",
		"/v1.50/images/create?fromImage=" + reg.Host + "/team/app&tag=1.0&platform=x/": "invalid platform",
	} {
		resp := f.do(t, http.MethodPost, path, nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || !strings.Contains(string(b), want) {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
	}

	resp := f.do(t, http.MethodPost, "/v1.50/images/create?fromImage="+reg.Host+"/team/app&tag=1.0&platform=linux%2Fs390x", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"errorDetail":{"message":"no matching manifest for linux/s390x in the manifest list entries"}`) {
		t.Fatalf("pull of a platform the index lacks: %d %s", resp.StatusCode, b)
	}

	// History and inspect of a platform.
	h, err := c.ImageHistory(t.Context(), name, client.ImageHistoryWithPlatform(platforms.MustParse("linux/arm64")))
	if err != nil || len(h.Items) != 2 || h.Items[0].ID != img.Target.Digest.String() || h.Items[0].Size != arm.Layers[1].Size || h.Items[1].ID != "<missing>" {
		t.Fatalf("history: %+v %v", h, err)
	}
	p := platforms.MustParse("linux/arm64")
	in, err := c.ImageInspect(t.Context(), name, client.ImageInspectWithPlatform(&p))
	if err != nil || in.Architecture != "arm64" {
		t.Fatalf("inspect arm64: %+v %v", in.Architecture, err)
	}
	p = platforms.MustParse("linux/s390x")
	if _, err := c.ImageInspect(t.Context(), name, client.ImageInspectWithPlatform(&p)); err == nil ||
		!strings.Contains(err.Error(), "image with reference "+name+" was found but does not provide the specified platform (linux/s390x)") {
		t.Fatalf("inspect s390x: %v", err)
	}

	// Save, remove, load: the same image.
	archive := saveImages(t, c, []string{name})
	rm, err := c.ImageRemove(t.Context(), name, client.ImageRemoveOptions{})
	if err != nil || len(rm.Items) != 2 || rm.Items[0].Untagged != name || rm.Items[1].Deleted != img.Target.Digest.String() {
		t.Fatalf("remove: %+v %v", rm, err)
	}
	loaded, err := c.ImageLoad(t.Context(), bytes.NewReader(archive), client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(loaded)
	loaded.Close()
	if !strings.Contains(string(out), `"stream":"Loaded image: `+name+`\n"`) {
		t.Fatalf("load: %s", out)
	}
	if got, err := f.svc.Image(ctx, name); err != nil || got.Target.Digest != img.Target.Digest {
		t.Fatalf("loaded image: %s %v", got.Target.Digest, err)
	}
	loaded, err = c.ImageLoad(t.Context(), strings.NewReader("not an archive"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ = io.ReadAll(loaded)
	loaded.Close()
	if !strings.Contains(string(out), `"errorDetail"`) {
		t.Fatalf("load of garbage: %s", out)
	}

	// Two names: removal by ID is a conflict unless forced; with noprune
	// the content stays until prune.
	if _, err := f.svc.Tag(ctx, name, reg.Host+"/team/app:2.0"); err != nil {
		t.Fatal(err)
	}
	short := img.Target.Digest.Encoded()[:12]
	if _, err := c.ImageRemove(t.Context(), short, client.ImageRemoveOptions{}); err == nil ||
		!strings.Contains(err.Error(), "conflict: unable to delete "+short+" (must be forced) - image is referenced in multiple repositories") {
		t.Fatalf("remove by ID of an image with two names: %v", err)
	}
	if _, err := c.ImageRemove(t.Context(), short, client.ImageRemoveOptions{Force: true, PruneChildren: false}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ContentStore().Info(ctx, amd.Layers[0].Digest); err != nil {
		t.Fatalf("noprune removal collected content: %v", err)
	}
	pr, err := c.ImagePrune(t.Context(), client.ImagePruneOptions{})
	if err != nil || pr.Report.SpaceReclaimed == 0 {
		t.Fatalf("prune: %+v %v", pr, err)
	}
	if _, err := f.store.ContentStore().Info(ctx, amd.Layers[0].Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("prune left dangling content: %v", err)
	}
	resp = f.do(t, http.MethodPost, "/v1.50/images/prune?filters="+`%7B%22dangling%22%3A%7B%22false%22%3Atrue%7D%7D`, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("prune --all: %d", resp.StatusCode)
	}
}

// pullMessages pulls ref and returns its stream as "ID STATUS" lines.
// saveImages is docker save of names through c: the whole archive.
func saveImages(t *testing.T, c *client.Client, names []string, opts ...client.ImageSaveOption) []byte {
	t.Helper()
	saved, err := c.ImageSave(t.Context(), names, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer saved.Close()
	archive, err := io.ReadAll(saved)
	if err != nil {
		t.Fatal(err)
	}
	return archive
}

func pullMessages(t *testing.T, c *client.Client, ref string, plats []string) []string {
	t.Helper()
	opts := client.ImagePullOptions{}
	for _, p := range plats {
		opts.Platforms = append(opts.Platforms, platforms.MustParse(p))
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := c.ImagePull(ctx, ref, opts)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	var out []string
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			t.Fatalf("pull %s: %v\n%s", ref, err, strings.Join(out, "\n"))
		}
		out = append(out, m.ID+" "+m.Status)
	}
	return out
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}
