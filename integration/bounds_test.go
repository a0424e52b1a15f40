package integration

import (
	"strings"
	"testing"

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
