package integration

import (
	"strings"
	"testing"

	"github.com/ctrpush/ctrpush/internal/registrytest"
)

// ctrpush tag gives an image a name push can use; rmi removes names and
// then the content nothing else holds.
func TestTagAndRmi(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	root := t.TempDir()
	img := importSample(t, root, "local/app:1.0", "1.0", 81)
	before := countStore(t, root)

	mustCtrpush(t, root, "tag", "local/app:1.0", reg.Host+"/team/app")
	if r := mustCtrpush(t, root, "images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(r.stdout, reg.Host+"/team/app:latest\n") {
		t.Fatalf("images after tag:\n%s", r.stdout)
	}
	mustCtrpush(t, root, "push", reg.Host+"/team/app")
	assertPushed(t, reg, "team/app", "latest", img.Target.Digest)

	if r := ctrpush(t, root, "rmi", img.Target.Digest.Encoded()[:12]); r.code != 1 || !strings.Contains(r.stderr, "several names") || !strings.Contains(r.stderr, "(--force)") {
		t.Fatalf("rmi by ID of an image with two names: exit %d, %s", r.code, r.stderr)
	}
	if r := mustCtrpush(t, root, "rmi", "local/app:1.0"); !strings.Contains(r.stdout, "Untagged: docker.io/local/app:1.0") {
		t.Fatalf("rmi: %q", r.stdout)
	}
	if after := countStore(t, root); after.content != before.content || after.images != 1 {
		t.Fatalf("removing one of two names: %+v → %+v", before, after)
	}
	if r := mustCtrpush(t, root, "rmi", img.Target.Digest.Encoded()[:12]); !strings.Contains(r.stdout, "Deleted: "+img.Target.Digest.String()) {
		t.Fatalf("rmi of the last name: %q", r.stdout)
	}
	if after := countStore(t, root); after.content != 0 || after.images != 0 || after.leases != 0 {
		t.Fatalf("content left after removing the last name: %+v", after)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rmi", "local/app:1.0"}, 1, "not found"},
		{[]string{"tag", "nope:1", "x:1"}, 1, "not found"},
		{[]string{"tag", "only-one"}, 2, "takes SOURCE and TARGET"},
		{[]string{"tag", "a:1", "Bad//Name"}, 2, `invalid target "Bad//Name"`},
	} {
		if r := ctrpush(t, root, tc.args...); r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, %s", tc.args, r.code, r.stderr)
		}
	}
}
