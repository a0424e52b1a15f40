package main

import (
	"errors"
	"net/http"

	"github.com/containerd/containerd/v2/core/remotes/docker"

	"github.com/ctrpush/ctrpush/imageservice"
)

// loginHint is what to do about a registry that wants credentials.
const loginHint = "; log in with `docker login` or `ctrpush login` (credentials come from $DOCKER_CONFIG/config.json, default ~/.docker)"

// registryHints adds to msg (err's text) what the user can do about a
// registry's answer: log in after a refused token (a bearer challenge) or
// a 401 (a basic-auth challenge: containerd's authorizer answers none
// without credentials, so the registry's 401 is the error); the setting or
// flag for manifests refused over their foreign layers.
func registryHints(err error, msg string) string {
	var (
		re *imageservice.RegistryError
		fl *imageservice.ForeignLayersError
	)
	if errors.Is(err, docker.ErrInvalidAuthorization) || errors.As(err, &re) && re.Status == http.StatusUnauthorized {
		msg += loginHint
	}
	if errors.As(err, &fl) {
		msg = reword(msg, fl.Error(), fl.Error()+"; the registry must accept those URLs (distribution: validation.manifests.urls.allow in its configuration), or, for a registry that wants the layers themselves, upload them with --allow-nondistributable-artifacts")
	}
	return msg
}
