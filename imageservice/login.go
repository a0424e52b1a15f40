package imageservice

import (
	"context"
	"fmt"
	"net/http"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
)

// CheckLogin asks registry ("host[:port]") whether the credentials that
// hosts carries are good: GET /v2/ with the same endpoint, TLS and
// authorizer a push uses, answering one auth challenge. It returns an error
// wrapping errdefs.ErrUnauthenticated when the registry refuses them; the
// error never contains the secret.
func CheckLogin(ctx context.Context, hosts docker.RegistryHosts, registry string) error {
	hs, err := hosts(registry)
	if err != nil {
		return err
	}
	if len(hs) == 0 {
		return fmt.Errorf("no endpoint configured for %s: %w", registry, errdefs.ErrNotFound)
	}
	h := hs[len(hs)-1] // the registry itself, after any mirrors
	for _, cand := range hs {
		if cand.Capabilities.Has(docker.HostCapabilityPush) {
			h = cand
			break
		}
	}
	u := h.Scheme + "://" + h.Host + h.Path + "/"
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	for attempt := 0; attempt < 2; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		if h.Authorizer != nil {
			if err := h.Authorizer.Authorize(ctx, req); err != nil {
				return fmt.Errorf("log in to %s: %w", registry, err)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("log in to %s: %w", registry, err)
		}
		drain(resp)
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0 && h.Authorizer != nil:
			if err := h.Authorizer.AddResponses(ctx, []*http.Response{resp}); err != nil {
				return fmt.Errorf("log in to %s: the registry refused the credentials: %w", registry, errdefs.ErrUnauthenticated)
			}
		case resp.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("log in to %s: the registry refused the credentials: %w", registry, errdefs.ErrUnauthenticated)
		default:
			return fmt.Errorf("log in to %s: %s from %s", registry, resp.Status, u)
		}
	}
	return fmt.Errorf("log in to %s: the registry refused the credentials: %w", registry, errdefs.ErrUnauthenticated)
}
