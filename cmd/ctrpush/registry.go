package main

import (
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/spf13/pflag"

	"github.com/ctrpush/ctrpush/dockercreds"
	"github.com/ctrpush/ctrpush/imageservice"
)

// defaultHostsDir is where nerdctl looks for registry host configuration.
const defaultHostsDir = "/etc/containerd/certs.d:/etc/docker/certs.d"

// registryFlags say how registries are reached: hosts.toml directories,
// insecure registries, and (from Docker's config.json) credentials.
type registryFlags struct {
	hostsDir string
	insecure []string
}

func (r *registryFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&r.hostsDir, "hosts-dir", defaultHostsDir, "colon-separated directories of containerd hosts.toml configuration (certs.d layout)")
	fl.StringSliceVar(&r.insecure, "insecure-registry", nil, "registry host to reach without certificate verification, falling back to HTTP (repeatable)")
}

// hosts builds the registry hosts for a push or pull.
func (a *app) hosts(plainHTTP bool) docker.RegistryHosts {
	c := a.hostsConfig(plainHTTP)
	// config.json in $DOCKER_CONFIG (default ~/.docker), as docker reads
	// it; the secrets it gives are known to the log's filter.
	creds, token := dockercreds.Credentials("")
	c.Credentials = func(host string) (string, string, error) {
		u, s, err := creds(host)
		secrets.addCredentials(u, s)
		return u, s, err
	}
	c.RegistryToken = func(host string) (string, error) {
		t, err := token(host)
		secrets.add(t)
		return t, err
	}
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
