package imageservice

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
)

// dockerHubAuthKey is the key Docker keeps Docker Hub's credentials under.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// dockerAuthKey is where Docker keeps a registry host's credentials.
func dockerAuthKey(host string) string {
	switch host {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return dockerHubAuthKey
	}
	return host
}

// dockerConfigDir is dir, or Docker's own choice ($DOCKER_CONFIG, default
// ~/.docker) when dir is empty.
func dockerConfigDir(dir string) string {
	if dir == "" {
		return dockerconfig.Dir()
	}
	return dir
}

// DockerConfigCredentials returns a HostsConfig's Credentials and
// RegistryToken read the way docker reads them: from config.json in dir
// ("" means $DOCKER_CONFIG, default ~/.docker), its auths (auth, username
// and password, identitytoken, registrytoken), credsStore and per-host
// credHelpers, Docker Hub under "https://index.docker.io/v1/". The file is
// read at each call, so a login made meanwhile counts.
//
// Errors name the config directory and, for a failing credential helper,
// the helper; never a secret or what the helper printed.
//
//	hosts := imageservice.HostsConfig{}
//	hosts.Credentials, hosts.RegistryToken = imageservice.DockerConfigCredentials("")
func DockerConfigCredentials(dir string) (credentials func(host string) (username, secret string, err error), registryToken func(host string) (string, error)) {
	credentials = func(host string) (string, string, error) {
		d := dockerConfigDir(dir)
		cf, err := dockerconfig.Load(d)
		if err != nil {
			return "", "", fmt.Errorf("read docker config in %s: %w", d, errors.Unwrap(err))
		}
		key := dockerAuthKey(host)
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return "", "", &CredentialHelperError{Helper: "docker-credential-" + credStoreName(cf.CredentialHelpers[key], cf.CredentialsStore),
				Config: filepath.Join(d, dockerconfig.ConfigFileName), Err: err}
		}
		if ac.IdentityToken != "" {
			return "", ac.IdentityToken, nil
		}
		return ac.Username, ac.Password, nil
	}
	registryToken = func(host string) (string, error) {
		d := dockerConfigDir(dir)
		cf, err := dockerconfig.Load(d)
		if err != nil {
			return "", fmt.Errorf("read docker config in %s: %w", d, errors.Unwrap(err))
		}
		ac, err := cf.GetAuthConfig(dockerAuthKey(host))
		if err != nil {
			return "", nil // the credentials path reports store failures
		}
		return ac.RegistryToken, nil
	}
	return credentials, registryToken
}

// credStoreName is the credential helper docker asks for a key: the
// host's credHelpers entry, else credsStore, else its platform default.
func credStoreName(helper, store string) string {
	if helper != "" {
		return helper
	}
	if store != "" {
		return store
	}
	return "desktop"
}

// SaveDockerCredentials stores username and secret for registry ("host[:port]";
// Docker Hub under its usual key) where docker login does: config.json
// in dir ("" means $DOCKER_CONFIG, default ~/.docker), or the credential
// store or helper it names. It does not check them: CheckLogin does.
func SaveDockerCredentials(dir, registry, username, secret string) error {
	d := dockerConfigDir(dir)
	cf, err := dockerconfig.Load(d)
	if err != nil {
		return fmt.Errorf("read docker config in %s: %w", d, err)
	}
	key := dockerAuthKey(registry)
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{ServerAddress: key, Username: username, Password: secret}); err != nil {
		return fmt.Errorf("store credentials for %s: the credential store failed", registry)
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("save %s: %w", cf.Filename, err)
	}
	return nil
}

// EraseDockerCredentials removes registry's credentials from where
// SaveDockerCredentials stores them, as docker logout does.
func EraseDockerCredentials(dir, registry string) error {
	d := dockerConfigDir(dir)
	cf, err := dockerconfig.Load(d)
	if err != nil {
		return fmt.Errorf("read docker config in %s: %w", d, err)
	}
	key := dockerAuthKey(registry)
	if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
		return fmt.Errorf("remove credentials for %s: the credential store failed", registry)
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("save %s: %w", cf.Filename, err)
	}
	return nil
}

// AuthConfig is one set of credentials for every registry host, as a
// Docker Engine API client sends them (X-Registry-Auth, POST /auth). The
// zero value is anonymous access.
type AuthConfig struct {
	Username string
	Password string
	// IdentityToken is sent instead of Username and Password (an OAuth2
	// refresh token, Docker's "identitytoken").
	IdentityToken string
	// RegistryToken is a bearer token sent to the registry as it is
	// (Docker's "registrytoken"); it takes precedence over the others.
	RegistryToken string
}

// AuthConfigCredentials returns a HostsConfig's Credentials and
// RegistryToken that answer ac for every host.
func AuthConfigCredentials(ac AuthConfig) (credentials func(host string) (username, secret string, err error), registryToken func(host string) (string, error)) {
	credentials = func(string) (string, string, error) {
		if ac.IdentityToken != "" {
			return "", ac.IdentityToken, nil
		}
		return ac.Username, ac.Password, nil
	}
	registryToken = func(string) (string, error) { return ac.RegistryToken, nil }
	return credentials, registryToken
}

// CredentialHelperError is a Docker credential helper (credsStore or
// credHelpers in config.json) that is missing or failed. Its message names
// the helper and how it failed (not found, its exit status) but not what
// it printed, which could quote anything.
type CredentialHelperError struct {
	Helper string // "docker-credential-pass"
	Config string // the config.json naming it
	Err    error
}

func (e *CredentialHelperError) Error() string {
	msg := e.Err.Error()
	// docker/cli's helper client: "error getting credentials - err: E, out: `OUTPUT`".
	if i := strings.Index(msg, ", out: `"); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimPrefix(msg, "error getting credentials - err: ")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return fmt.Sprintf("credential helper %s (named in %s) failed: %s", e.Helper, e.Config, msg)
}

// Unwrap returns the helper's error.
func (e *CredentialHelperError) Unwrap() error { return e.Err }
