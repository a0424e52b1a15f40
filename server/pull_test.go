package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/moby/moby/client"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// docker pull --all-tags through the SDK (fromImage without tag): every
// tag the registry lists, each with dockerd's stream; a repository the
// registry does not know is dockerd's error before any stream.
func TestPullAllTagsWithSDK(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Second)
	reg := registrytest.Start(t)
	ctx := namespaces.WithNamespace(t.Context(), "test")
	one := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64"}, Layers: 1, Seed: 194})
	two := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, Seed: 195})
	repo := reg.Host + "/team/all"
	for tag, img := range map[string]*testimage.Image{"1.0": one, "2.0": two} {
		f.add(t, img, repo+":"+tag)
		if _, err := f.svc.Push(ctx, repo+":"+tag); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Delete(ctx, repo+":"+tag, imageservice.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(client.WithHost("unix://" + f.sock))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	pctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := c.ImagePull(pctx, repo, client.ImagePullOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for m, err := range resp.JSONMessages(pctx) {
		if err != nil {
			t.Fatalf("pull --all-tags: %v\n%s", err, strings.Join(msgs, "\n"))
		}
		msgs = append(msgs, m.ID+" "+m.Status)
	}
	for _, want := range []string{
		"1.0 Pulling from team/all",
		one.Manifests[0].Layers[0].Digest.Encoded()[:12] + " Pull complete",
		" Digest: " + one.Target.Digest.String(),
		" Status: Downloaded newer image for " + repo + ":1.0",
		"2.0 Pulling from team/all",
		" Digest: " + two.Target.Digest.String(),
		" Status: Downloaded newer image for " + repo + ":2.0",
	} {
		if !contains(msgs, want) {
			t.Fatalf("pull --all-tags stream lacks %q:\n%s", want, strings.Join(msgs, "\n"))
		}
	}
	for tag, img := range map[string]*testimage.Image{"1.0": one, "2.0": two} {
		if got, err := f.svc.Image(ctx, repo+":"+tag); err != nil || got.Target.Digest != img.Target.Digest {
			t.Fatalf("%s after pull --all-tags: %s %v", tag, got.Target.Digest, err)
		}
	}

	_, err = c.ImagePull(t.Context(), reg.Host+"/team/none", client.ImagePullOptions{All: true})
	if err == nil || !strings.Contains(err.Error(), "pull access denied for "+reg.Host+"/team/none, repository does not exist or may require 'docker login'") {
		t.Fatalf("pull --all-tags of an unknown repository: %v", err)
	}
}
