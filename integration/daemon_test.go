package integration

import (
	"context"
	"slices"
	"strings"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/ctrpush/ctrpush/internal/containerdtest"
	"github.com/ctrpush/ctrpush/internal/registrytest"
	"github.com/ctrpush/ctrpush/internal/testimage"
)

// Daemon mode against a real containerd: import, push, ctr sees the image,
// no lease is left, the distribution-source labels are in the daemon's
// content, and namespaces are isolated.
func TestDaemonImportPush(t *testing.T) {
	t.Parallel()
	d := containerdtest.Start(t)
	reg := registrytest.Start(t)
	img := testimage.MustNew(testimage.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 2, Seed: 21})
	name := reg.Host + "/daemon/app:1.0"
	archive := writeArchive(t, img, "oci-tar", name, "1.0")
	on := func(ns string, args ...string) result {
		return ctrpush(t, "", append([]string{"--address", d.Address, "--namespace", ns}, args...)...)
	}

	info := on("a", "info")
	if info.code != 0 || !strings.Contains(info.stdout, "store: containerd") || !strings.Contains(info.stdout, d.Address) {
		t.Fatalf("info: %+v", info)
	}
	// version and info name the daemon's version as ctr reads it.
	ctrVersion := d.Ctr(t, "a", "version")
	server := ctrVersion[strings.Index(ctrVersion, "Server:"):]
	var daemonVersion string
	for _, l := range strings.Split(server, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "Version:" {
			daemonVersion = f[1]
		}
	}
	if daemonVersion == "" {
		t.Fatalf("no server version in ctr version:\n%s", ctrVersion)
	}
	if v := on("a", "version"); v.code != 0 || !strings.Contains(v.stdout, "store:      containerd daemon "+daemonVersion+" ") || !strings.Contains(v.stdout, "at "+d.Address+", namespace a") {
		t.Fatalf("version on the daemon %s: %+v", daemonVersion, v)
	}
	if !strings.Contains(info.stdout, "daemon: containerd "+daemonVersion) {
		t.Fatalf("info does not name the daemon's version %s: %+v", daemonVersion, info)
	}
	if r := on("a", "import", archive); r.code != 0 || !strings.Contains(r.stdout, name+" "+img.Target.Digest.String()) {
		t.Fatalf("import: %+v", r)
	}
	if ls := d.Ctr(t, "a", "images", "ls", "-q"); !strings.Contains(ls, name) {
		t.Fatalf("ctr does not see the imported image:\n%s", ls)
	}
	r := on("a", "push", name)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "1.0: digest: "+img.Target.Digest.String()) {
		t.Fatalf("push: %+v", r)
	}
	assertPushed(t, reg, "daemon/app", "1.0", img.Target.Digest)

	if leases := strings.TrimSpace(d.Ctr(t, "a", "leases", "ls")); strings.Count(leases, "\n") != 0 {
		t.Fatalf("leases left behind:\n%s", leases)
	}
	content := d.Ctr(t, "a", "content", "ls")
	layer := img.Manifests[0].Layers[0].Digest.String()
	found := false
	for _, line := range strings.Split(content, "\n") {
		if strings.HasPrefix(line, layer) && strings.Contains(line, "containerd.io/distribution.source.127.0.0.1=daemon/app") {
			found = true
		}
	}
	if !found {
		t.Fatalf("layer %s has no distribution-source label in the daemon:\n%s", layer, content)
	}

	// A lease of a ctrpush process that is gone (another boot) is released
	// by the next ctrpush on the daemon; anybody else's lease is not.
	d.Ctr(t, "a", "leases", "create", "--id", "dead-ctrpush", "ctrpush.owner=1:1:a-boot-long-gone")
	d.Ctr(t, "a", "leases", "create", "--id", "someone-else", "owner=not-ctrpush")
	if r := on("a", "info"); r.code != 0 {
		t.Fatalf("info: %+v", r)
	}
	if leases := d.Ctr(t, "a", "leases", "ls"); strings.Contains(leases, "dead-ctrpush") || !strings.Contains(leases, "someone-else") {
		t.Fatalf("leases after ctrpush opened the daemon's store:\n%s", leases)
	}
	d.Ctr(t, "a", "leases", "rm", "someone-else")

	// So is a partial ingest of a ctrpush process that is gone (its ref
	// names it); anybody else's ingest is kept.
	deadIngest, othersIngest := "sha256:partial@ctrpush/1:1:a-boot-long-gone/1", "someone-else-ingest"
	leaveIngests(t, d.Address, "a", deadIngest, othersIngest)
	if r := on("a", "info"); r.code != 0 {
		t.Fatalf("info: %+v", r)
	}
	if refs := ingestRefs(t, d.Address, "a"); slices.Contains(refs, deadIngest) || !slices.Contains(refs, othersIngest) {
		t.Fatalf("ingests after ctrpush opened the daemon's store: %q", refs)
	}

	// Another namespace does not see it.
	other := on("b", "push", name)
	if other.code != 1 || !strings.Contains(other.stderr, "not found in the store (namespace b)") {
		t.Fatalf("push from namespace b: exit %d, %s", other.code, other.stderr)
	}

	// Pull into the daemon, too.
	if r := on("c", "pull", "--all-platforms", name); r.code != 0 {
		t.Fatalf("pull: %+v", r)
	}
	if ls := d.Ctr(t, "c", "images", "ls", "-q"); !strings.Contains(ls, name) {
		t.Fatalf("ctr does not see the pulled image:\n%s", ls)
	}
}

// daemonContent is the content store of the daemon at address, in ns, as
// any containerd client sees it.
func daemonContent(t *testing.T, address, ns string) (context.Context, content.Store) {
	t.Helper()
	c, err := containerd.New(address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return namespaces.WithNamespace(t.Context(), ns), c.ContentStore()
}

// leaveIngests starts an ingest under each ref and leaves it partial.
func leaveIngests(t *testing.T, address, ns string, refs ...string) {
	t.Helper()
	ctx, cs := daemonContent(t, address, ns)
	for _, ref := range refs {
		w, err := cs.Writer(ctx, content.WithRef(ref))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
		_ = w.Close()
	}
	if got := ingestRefs(t, address, ns); len(got) < len(refs) {
		t.Fatalf("the daemon kept ingests %q of %q: the test would prove nothing", got, refs)
	}
}

// ingestRefs lists the refs of the daemon's partial ingests in ns.
func ingestRefs(t *testing.T, address, ns string) []string {
	t.Helper()
	ctx, cs := daemonContent(t, address, ns)
	sts, err := cs.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, st := range sts {
		refs = append(refs, st.Ref)
	}
	return refs
}
