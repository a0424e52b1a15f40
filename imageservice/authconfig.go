package imageservice

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
