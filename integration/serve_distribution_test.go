package integration

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ctrpush/ctrpush/internal/containerdtest"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// The docker CLI's whole image-distribution workflow through `ctrpush
// serve` on the embedded store: pull of an index (the host's layers) and
// --platform, images, history, inspect --platform, tag, push, save → rmi →
// load → push again with the same digest, rmi --no-prune then prune
// really freeing the store; and the errors docker prints for a pull of a
// missing tag, an rmi by ID of an image with two names, a load of
// garbage, a push of an image that is not there.
func TestDockerCLIWorkflowThroughServe(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	reg := registrytest.Start(t)
	src := t.TempDir()
	repo := reg.Host + "/team/src"
	img := importSample(t, src, repo+":1.0", "1.0", 184)
	mustCtrpush(t, src, "push", "--all-platforms", repo+":1.0")
	amd, arm := img.Platform("linux/amd64"), img.Platform("linux/arm64")

	root := t.TempDir()
	s := startServe(t, "--root", root)
	config := t.TempDir()
	run := func(stdin string, args ...string) result {
		t.Helper()
		return s.docker(t, docker, config, stdin, args...)
	}
	must := func(args ...string) result {
		t.Helper()
		r := run("", args...)
		if r.code != 0 {
			t.Fatalf("docker %s: exit %d\n%s\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}
	want := func(r result, what string, parts ...string) {
		t.Helper()
		for _, p := range parts {
			if !strings.Contains(r.stdout+r.stderr, p) {
				t.Fatalf("%s: no %q in\n%s\n%s", what, p, r.stdout, r.stderr)
			}
		}
	}

	// docker pull: the index, the host's layers only.
	r := must("pull", repo+":1.0")
	want(r, "docker pull", "1.0: Pulling from team/src", amd.Layers[0].Digest.Encoded()[:12]+": Waiting",
		amd.Layers[0].Digest.Encoded()[:12]+": Verifying Checksum", amd.Layers[0].Digest.Encoded()[:12]+": Pull complete",
		"Digest: "+img.Target.Digest.String(), "Status: Downloaded newer image for "+repo+":1.0")
	if strings.Contains(r.stdout, arm.Layers[0].Digest.Encoded()[:12]) {
		t.Fatalf("docker pull fetched an arm64 layer:\n%s", r.stdout)
	}
	want(must("pull", repo+":1.0"), "second docker pull", "Status: Image is up to date for "+repo+":1.0")
	// --all-tags: every tag the registry lists (here 1.0 and 2.0).
	mustCtrpush(t, src, "tag", repo+":1.0", repo+":2.0")
	mustCtrpush(t, src, "push", "--all-platforms", repo+":2.0")
	want(must("pull", "--all-tags", repo), "docker pull --all-tags", "1.0: Pulling from team/src", "Status: Image is up to date for "+repo+":1.0",
		"2.0: Pulling from team/src", "Status: Downloaded newer image for "+repo+":2.0")
	must("rmi", repo+":2.0")
	want(must("pull", "--platform", "linux/arm64", repo+":1.0"), "docker pull --platform", arm.Layers[0].Digest.Encoded()[:12]+": Pull complete")

	// images, history, inspect --platform.
	want(must("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"), "docker images", repo+":1.0 "+img.Target.Digest.Encoded()[:12])
	r = must("history", "--format", "{{.ID}} {{.Size}}", repo+":1.0")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != len(amd.Layers) || !strings.HasPrefix(lines[0], img.Target.Digest.Encoded()[:12]) {
		t.Fatalf("docker history:\n%s", r.stdout)
	}
	r = must("image", "inspect", "--platform", "linux/arm64", "--format", "{{.Os}}/{{.Architecture}}", repo+":1.0")
	if strings.TrimSpace(r.stdout) != "linux/arm64" {
		t.Fatalf("inspect --platform linux/arm64: %s", r.stdout)
	}
	r = run("", "image", "inspect", "--platform", "linux/s390x", repo+":1.0")
	if r.code == 0 {
		t.Fatalf("inspect --platform linux/s390x succeeded:\n%s", r.stdout)
	}
	want(r, "inspect --platform linux/s390x", "image with reference "+repo+":1.0 was found but does not provide the specified platform (linux/s390x)")

	// tag, push: docker's own lines.
	must("tag", repo+":1.0", reg.Host+"/team/dst:1.0")
	r = must("push", reg.Host+"/team/dst:1.0")
	want(r, "docker push", "The push refers to repository ["+reg.Host+"/team/dst]", amd.Layers[0].Digest.Encoded()[:12]+": Preparing",
		"1.0: digest: "+img.Target.Digest.String()+" size: ")
	assertPushed(t, reg, "team/dst", "1.0", img.Target.Digest)

	// save → rmi → load → push again: the same digest.
	archive := filepath.Join(t.TempDir(), "saved.tar")
	must("save", "-o", archive, repo+":1.0")
	r = run("", "rmi", img.Target.Digest.Encoded()[:12])
	if r.code == 0 {
		t.Fatalf("rmi by ID of an image with two names succeeded:\n%s", r.stdout)
	}
	want(r, "rmi by ID", "conflict: unable to delete "+img.Target.Digest.Encoded()[:12]+" (must be forced) - image is referenced in multiple repositories")
	want(must("rmi", reg.Host+"/team/dst:1.0"), "rmi of one name", "Untagged: "+reg.Host+"/team/dst:1.0")
	r = must("rmi", repo+":1.0")
	want(r, "rmi of the last name", "Untagged: "+repo+":1.0", "Deleted: "+img.Target.Digest.String())
	if c := countStore(t, root); c.images != 0 || c.content != 0 {
		t.Fatalf("after rmi of every name the store holds %+v", c)
	}
	want(must("load", "-i", archive), "docker load", "Loaded image: "+repo+":1.0")
	must("tag", repo+":1.0", reg.Host+"/team/again:1.0")
	want(must("push", reg.Host+"/team/again:1.0"), "push after load", "1.0: digest: "+img.Target.Digest.String())
	assertPushed(t, reg, "team/again", "1.0", img.Target.Digest)

	// rmi --no-prune leaves the content; prune frees it.
	must("rmi", reg.Host+"/team/again:1.0")
	must("rmi", "--no-prune", repo+":1.0")
	if c := countStore(t, root); c.images != 0 || c.content == 0 {
		t.Fatalf("after rmi --no-prune the store holds %+v", c)
	}
	want(must("image", "prune", "-f"), "docker image prune", "Total reclaimed space:")
	if c := countStore(t, root); c.content != 0 {
		t.Fatalf("after prune the store holds %+v", c)
	}

	// load --platform: the index, that platform's content only; a
	// platform the archive lacks is dockerd's error and leaves nothing.
	r = run("", "load", "--platform", "linux/s390x", "-i", archive)
	if r.code == 0 {
		t.Fatalf("load --platform linux/s390x succeeded:\n%s", r.stdout)
	}
	want(r, "load --platform linux/s390x", "image "+repo+":1.0 was loaded, but doesn't provide the requested platform ([linux/s390x])")
	if c := countStore(t, root); c.images != 0 || c.content != 0 || c.leases != 0 {
		t.Fatalf("a failed load --platform left %+v", c)
	}
	want(must("load", "--platform", "linux/arm64", "-i", archive), "docker load --platform", "Loaded image: "+repo+":1.0")
	want(must("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"), "docker images after load --platform", repo+":1.0 "+img.Target.Digest.Encoded()[:12])
	r = must("image", "inspect", "--platform", "linux/arm64", "--format", "{{.Os}}/{{.Architecture}}", repo+":1.0")
	if strings.TrimSpace(r.stdout) != "linux/arm64" {
		t.Fatalf("inspect --platform linux/arm64 after load --platform: %s", r.stdout)
	}
	if c, wantBlobs := countStore(t, root), 3+len(arm.Layers); c.content != wantBlobs {
		t.Fatalf("after load --platform linux/arm64 the store holds %+v, want %d blobs (index, manifest, config, layers)", c, wantBlobs)
	}
	must("rmi", repo+":1.0")

	// save by ID: no name in the archive; it loads back as a dangling
	// image (Loaded image ID), which docker tag names and docker image
	// prune removes, as with dockerd.
	must("load", "-i", archive)
	short := img.Target.Digest.Encoded()[:12]
	byID := filepath.Join(t.TempDir(), "byid.tar")
	must("save", "-o", byID, short)
	must("rmi", repo+":1.0")
	want(must("load", "-i", byID), "load of an archive saved by ID", "Loaded image ID: "+img.Target.Digest.String())
	want(must("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"), "docker images of a dangling image", "<none>:<none> "+short)
	must("tag", short, reg.Host+"/team/byid:1.0")
	if r = must("images", "--format", "{{.Repository}}:{{.Tag}}"); strings.TrimSpace(r.stdout) != reg.Host+"/team/byid:1.0" {
		t.Fatalf("docker images after tagging the dangling image:\n%s", r.stdout)
	}
	want(must("push", reg.Host+"/team/byid:1.0"), "push of the image loaded by ID", "1.0: digest: "+img.Target.Digest.String())
	assertPushed(t, reg, "team/byid", "1.0", img.Target.Digest)
	must("rmi", reg.Host+"/team/byid:1.0")
	want(must("load", "-i", byID), "second load by ID", "Loaded image ID: "+img.Target.Digest.String())
	want(must("image", "prune", "-f"), "prune of a dangling image", "deleted: "+img.Target.Digest.String())
	if c := countStore(t, root); c.images != 0 || c.content != 0 {
		t.Fatalf("after prune of the dangling image the store holds %+v", c)
	}

	// Errors, as docker prints them.
	r = run("", "pull", repo+":nope")
	if r.code == 0 {
		t.Fatal("pull of a missing tag succeeded")
	}
	want(r, "pull of a missing tag", "manifest for "+repo+":nope not found: manifest unknown")
	r = run("", "rmi", reg.Host+"/team/gone")
	if r.code == 0 {
		t.Fatal("rmi of a missing image succeeded")
	}
	want(r, "rmi of a missing image", "No such image: "+reg.Host+"/team/gone:latest")
	garbage := filepath.Join(t.TempDir(), "garbage.tar")
	if err := os.WriteFile(garbage, []byte("this is not an image archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = run("", "load", "-i", garbage); r.code == 0 {
		t.Fatalf("load of garbage succeeded:\n%s", r.stdout)
	}
	want(r, "load of garbage", "import the uploaded archive: ")
	if c := countStore(t, root); c.images != 0 || c.content != 0 || c.leases != 0 {
		t.Fatalf("a failed load left %+v", c)
	}
	r = run("", "push", reg.Host+"/team/gone:1.0")
	if r.code == 0 {
		t.Fatal("push of a missing image succeeded")
	}
	want(r, "push of a missing image", "An image does not exist locally with the tag: "+reg.Host+"/team/gone")
}

// The same workflow on a containerd daemon: docker pull --platform,
// history, save --platform, rmi, load and push of the saved manifest;
// rmi --no-prune and prune leave no content; ctr sees what docker did and
// no lease is left.
func TestDockerCLIWorkflowThroughServeOnDaemon(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	d := containerdtest.Start(t)
	reg := registrytest.Start(t)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, Seed: 185})
	src := t.TempDir()
	name := reg.Host + "/daemon/src:1.0"
	mustCtrpush(t, src, "import", writeArchive(t, img, "oci-tar", name, "1.0"))
	mustCtrpush(t, src, "push", "--all-platforms", name)

	s := startServe(t, "--address", d.Address, "--namespace", "dist")
	config := t.TempDir()
	must := func(args ...string) result {
		t.Helper()
		r := s.docker(t, docker, config, "", args...)
		if r.code != 0 {
			t.Fatalf("docker %s: exit %d\n%s\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}
	if r := must("pull", "--platform", "linux/arm64", name); !strings.Contains(r.stdout, "Digest: "+img.Target.Digest.String()) {
		t.Fatalf("docker pull:\n%s", r.stdout)
	}
	if ls := d.Ctr(t, "dist", "images", "ls", "-q"); !strings.Contains(ls, name) {
		t.Fatalf("ctr does not see the pulled image:\n%s", ls)
	}
	if r := must("history", "--platform", "linux/arm64", "-q", name); strings.Count(strings.TrimSpace(r.stdout), "\n") != 1 {
		t.Fatalf("docker history:\n%s", r.stdout)
	}
	archive := filepath.Join(t.TempDir(), "saved.tar")
	must("save", "--platform", "linux/arm64", "-o", archive, name)
	if r := must("rmi", name); !strings.Contains(r.stdout, "Deleted: "+img.Target.Digest.String()) {
		t.Fatalf("docker rmi:\n%s", r.stdout)
	}
	if ls := d.Ctr(t, "dist", "images", "ls", "-q"); strings.Contains(ls, name) {
		t.Fatalf("ctr still sees the removed image:\n%s", ls)
	}
	// load --platform of a platform the one-manifest archive lacks.
	if r := s.docker(t, docker, config, "", "load", "--platform", "linux/amd64", "-i", archive); r.code == 0 ||
		!strings.Contains(r.stderr, "image "+name+" was loaded, but doesn't provide the requested platform ([linux/amd64])") {
		t.Fatalf("docker load --platform linux/amd64 of an arm64 archive: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if ls := d.Ctr(t, "dist", "images", "ls", "-q"); strings.Contains(ls, name) {
		t.Fatalf("a failed load --platform left the image:\n%s", ls)
	}
	if r := must("load", "--platform", "linux/arm64", "-i", archive); !strings.Contains(r.stdout, "Loaded image: "+name) {
		t.Fatalf("docker load:\n%s", r.stdout)
	}
	// The archive of one platform holds that manifest as the image.
	arm := img.Platform("linux/arm64").Descriptor.Digest
	must("tag", name, reg.Host+"/daemon/again:1.0")
	if r := must("push", reg.Host+"/daemon/again:1.0"); !strings.Contains(r.stdout, "1.0: digest: "+arm.String()) {
		t.Fatalf("docker push after load:\n%s", r.stdout)
	}
	assertPushed(t, reg, "daemon/again", "1.0", arm)
	// docker import writes its layer, config and manifest through the
	// daemon; ctr sees the image, docker push sends it.
	imported := reg.Host + "/daemon/imported:1.0"
	r := must("import", "-m", "on a daemon", "-c", `CMD ["/bin/hello"]`, writeRootFS(t), imported)
	id := strings.TrimSpace(r.stdout)
	if ls := d.Ctr(t, "dist", "images", "ls", "-q"); !strings.Contains(ls, imported) {
		t.Fatalf("ctr does not see the imported image:\n%s", ls)
	}
	if r := must("push", imported); !strings.Contains(r.stdout, "1.0: digest: "+id) {
		t.Fatalf("docker push of the imported image:\n%s", r.stdout)
	}
	assertPushed(t, reg, "daemon/imported", "1.0", digest.Digest(id))
	craneValidate(t, imported)
	must("rmi", imported)
	must("rmi", "--no-prune", reg.Host+"/daemon/again:1.0")
	must("rmi", "--no-prune", name)
	if r := must("image", "prune", "-f"); !strings.Contains(r.stdout, "Total reclaimed space:") {
		t.Fatalf("docker image prune:\n%s", r.stdout)
	}
	if left := strings.TrimSpace(d.Ctr(t, "dist", "content", "ls", "-q")); left != "" {
		t.Fatalf("content left after rmi and prune:\n%s", left)
	}
	if leases := strings.TrimSpace(d.Ctr(t, "dist", "leases", "ls")); strings.Count(leases, "\n") != 0 {
		t.Fatalf("leases left behind:\n%s", leases)
	}
}

// writeRootFS writes testimage.RootFS to a file.
func writeRootFS(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, testimage.RootFS(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// docker import through `ctrpush serve`: a root filesystem tar becomes an
// image with the message and changes given, which docker push sends and
// crane validates; a change docker refuses is its error, leaving nothing.
func TestDockerImportThroughServe(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	reg := registrytest.Start(t)
	root := t.TempDir()
	s := startServe(t, "--root", root)
	config := t.TempDir()
	rootfs := writeRootFS(t)
	name := reg.Host + "/team/imported:1.0"

	r := s.docker(t, docker, config, "", "import", "-c", "RUN true", rootfs, name)
	if r.code == 0 || !strings.Contains(r.stderr, "run is not a valid change command") {
		t.Fatalf("docker import -c 'RUN true': exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if c := countStore(t, root); c.images != 0 || c.content != 0 || c.leases != 0 {
		t.Fatalf("a refused import left %+v", c)
	}
	r = s.docker(t, docker, config, "", "import", "-m", "from a test", "-c", `CMD ["/bin/hello"]`, "-c", "ENV GREETING=hello",
		"-c", "WORKDIR /srv", "-c", "USER nobody", "-c", "LABEL team=imp", "-c", "EXPOSE 8080", "-c", `ENTRYPOINT ["/bin/sh"]`, rootfs, name)
	if r.code != 0 || !strings.HasPrefix(strings.TrimSpace(r.stdout), "sha256:") {
		t.Fatalf("docker import: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	r = s.docker(t, docker, config, "", "image", "inspect", "--format",
		"{{.ID}} {{.Os}}/{{.Architecture}} {{json .Config.Cmd}} {{json .Config.Entrypoint}} {{json .Config.Env}} {{.Config.WorkingDir}} {{.Config.User}} {{.Config.Labels.team}} {{json .Config.ExposedPorts}}", name)
	want := id + " linux/" + runtime.GOARCH + ` ["/bin/hello"] ["/bin/sh"] ["GREETING=hello"] /srv nobody imp {"8080/tcp":{}}`
	if r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Fatalf("docker image inspect of the imported image:\n got %s\nwant %s\n%s", strings.TrimSpace(r.stdout), want, r.stderr)
	}
	if r = s.docker(t, docker, config, "", "history", "--format", "{{.Comment}}", name); r.code != 0 || strings.TrimSpace(r.stdout) != "from a test" {
		t.Fatalf("docker history of the imported image: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r = s.docker(t, docker, config, "", "push", name); r.code != 0 || !strings.Contains(r.stdout, "1.0: digest: "+id) {
		t.Fatalf("docker push of the imported image: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertPushed(t, reg, "team/imported", "1.0", digest.Digest(id))
	craneValidate(t, name)

	// docker import URL: the server downloads the tar; same content and
	// platform, so the same layer.
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, rootfs)
	}))
	defer web.Close()
	r = s.docker(t, docker, config, "", "import", web.URL+"/rootfs.tar", reg.Host+"/team/imported:url")
	if r.code != 0 || !strings.Contains(r.stdout, "sha256:") {
		t.Fatalf("docker import URL: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = s.docker(t, docker, config, "", "image", "inspect", "--format", "{{json .RootFS.Layers}}", name, reg.Host+"/team/imported:url")
	if lines := strings.Fields(r.stdout); r.code != 0 || len(lines) != 2 || lines[0] != lines[1] {
		t.Fatalf("the image imported from a URL has other layers than from the file: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
