package main

import (
	"errors"
	"fmt"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/spf13/pflag"

	"github.com/ctrpush/ctrpush/imageservice"
)

// defaultHostsDir is where nerdctl looks for registry host configuration.
const defaultHostsDir = "/etc/containerd/certs.d:/etc/docker/certs.d"

// dockerHubAuthKey is the key Docker keeps Docker Hub's credentials under.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// registryFlags say how registries are reached: hosts.toml directories,
// insecure registries, and (from Docker's config.json) credentials.
type registryFlags struct {
	hostsDir  string
	insecure  []string
	plainHTTP bool
}

func (r *registryFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&r.hostsDir, "hosts-dir", defaultHostsDir, "colon-separated directories of containerd hosts.toml configuration (certs.d layout)")
	fl.StringSliceVar(&r.insecure, "insecure-registry", nil, "registry host to reach without certificate verification, falling back to HTTP (repeatable)")
}

// hosts builds the registry hosts for a push or pull.
func (a *app) hosts(plainHTTP bool) docker.RegistryHosts {
	c := a.hostsConfig(plainHTTP)
	c.Credentials, c.RegistryToken = dockerCredentials(), dockerRegistryToken
	return imageservice.RegistryHosts(c)
}

// hostsConfig is the registry configuration from the flags, without
// credentials.
func (a *app) hostsConfig(plainHTTP bool) imageservice.HostsConfig {
	return imageservice.HostsConfig{
		HostsDirs: imageservice.SplitHostsDirs(a.registry.hostsDir),
		PlainHTTP: plainHTTP,
		Insecure:  a.registry.insecure,
	}
}

// dockerCredentials reads credentials the way docker does: config.json in
// $DOCKER_CONFIG (default ~/.docker), its auths, credsStore and per-host
// credHelpers. Secrets never leave this function except to the registry.
func dockerCredentials() func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		cf, err := dockerconfig.Load(dockerconfig.Dir())
		if err != nil {
			return "", "", fmt.Errorf("read docker config in %s: %w", dockerconfig.Dir(), errors.Unwrap(err))
		}
		key := authKey(host)
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			// The helper's own message can quote what it was given; keep
			// only which host and which store failed.
			return "", "", fmt.Errorf("credentials for %s from %s: the credential store failed (check `docker-credential-%s list`)", host, dockerconfig.Dir(), credStoreName(cf.CredentialHelpers[key], cf.CredentialsStore))
		}
		if ac.IdentityToken != "" {
			return "", ac.IdentityToken, nil
		}
		return ac.Username, ac.Password, nil
	}
}

func credStoreName(helper, store string) string {
	if helper != "" {
		return helper
	}
	if store != "" {
		return store
	}
	return "desktop"
}

// dockerRegistryToken returns the "registrytoken" config.json holds for
// host, if any: a bearer token sent as it is.
func dockerRegistryToken(host string) (string, error) {
	cf, err := dockerconfig.Load(dockerconfig.Dir())
	if err != nil {
		return "", fmt.Errorf("read docker config in %s: %w", dockerconfig.Dir(), errors.Unwrap(err))
	}
	ac, err := cf.GetAuthConfig(authKey(host))
	if err != nil {
		return "", nil // the credentials path reports store failures
	}
	return ac.RegistryToken, nil
}
