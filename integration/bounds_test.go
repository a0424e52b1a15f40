package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/ctrpush/ctrpush/internal/registrytest"
)

// A registry that wants basic auth (WWW-Authenticate: Basic) answers a
// push or pull without credentials with 401; the error says how to log
// in, as it does for a refused bearer token.
func TestBasicAuthRefusalSaysLogIn(t *testing.T) {
	t.Parallel()
	reg := registrytest.StartHtpasswd(t, "pusher", "s3cret")
	root := t.TempDir()
	name := reg.Host + "/auth/app:1.0"
	importSample(t, root, name, "1.0", 61)
	env := []string{"DOCKER_CONFIG=" + t.TempDir()}
	for _, args := range [][]string{{"push", name}, {"pull", name}} {
		r := ctrpushEnv(t, env, root, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "401 Unauthorized") || !strings.Contains(r.stderr, "`ctrpush login`") {
			t.Fatalf("%s without credentials: exit %d\n%s", args[0], r.code, r.stderr)
		}
	}
}

// A pull from a registry that is down fails at once and says so, as a
// push does.
func TestPullFromADeadRegistry(t *testing.T) {
	t.Parallel()
	host := registrytest.RefusingHost(t)
	r := ctrpush(t, t.TempDir(), "pull", host+"/team/app:1.0")
	if r.code != 1 || !strings.Contains(r.stderr, "registry "+host+" is unreachable; check that it is running and the address is right") || r.elapsed > 5*time.Second {
		t.Fatalf("exit %d after %s\n%s", r.code, r.elapsed, r.stderr)
	}
}
