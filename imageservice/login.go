package imageservice

import (
	"context"

	"github.com/containerd/containerd/v2/core/remotes/docker"

	"github.com/ctrpush/ctrpush/internal/registry"
)

// CheckLogin asks registry ("host[:port]") whether the credentials that
// hosts carries are good: GET /v2/ with the same endpoint, TLS and
// authorizer a push uses, answering one auth challenge. It returns an error
// wrapping errdefs.ErrUnauthenticated when the registry refuses them; the
// error never contains the secret.
func CheckLogin(ctx context.Context, hosts docker.RegistryHosts, host string) error {
	return registry.CheckLogin(ctx, hosts, host)
}
