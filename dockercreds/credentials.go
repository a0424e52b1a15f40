// Package dockercreds reads and writes registry credentials the way the
// docker CLI does: Docker's config.json (auths, credsStore, credHelpers)
// and the credential helpers it names. Its lookups fit
// imageservice.HostsConfig's Credentials and RegistryToken.
package dockercreds

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	dockerconfig "github.com/docker/cli/cli/config"
	clicredentials "github.com/docker/cli/cli/config/credentials"
	"github.com/docker/cli/cli/config/types"
	helperclient "github.com/docker/docker-credential-helpers/client"
	helpercredentials "github.com/docker/docker-credential-helpers/credentials"
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

// Credentials returns a HostsConfig's Credentials and
// RegistryToken read the way docker reads them: from config.json in dir
// ("" means $DOCKER_CONFIG, default ~/.docker), its auths (auth, username
// and password, identitytoken, registrytoken), credsStore and per-host
// credHelpers, Docker Hub under "https://index.docker.io/v1/".
//
// Each host is looked up once for the life of the returned functions (one
// push or pull): a credential helper is asked once per registry, not per
// request, and its failure is kept as well. Call Credentials
// again to read a login made meanwhile.
//
// Errors name the config directory and, for a failing credential helper,
// the helper and its exit status; never a secret or what the helper
// printed (its standard error is not passed through either).
//
//	hosts := imageservice.HostsConfig{}
//	hosts.Credentials, hosts.RegistryToken = dockercreds.Credentials("")
func Credentials(dir string) (credentials func(host string) (username, secret string, err error), registryToken func(host string) (string, error)) {
	var (
		mu     sync.Mutex
		looked = map[string]*authLookup{}
	)
	lookup := func(host string) (types.AuthConfig, error) {
		mu.Lock()
		l, ok := looked[host]
		if !ok {
			l = &authLookup{}
			looked[host] = l
		}
		mu.Unlock()
		l.once.Do(func() { l.ac, l.err = readDockerAuth(dir, host) })
		return l.ac, l.err
	}
	credentials = func(host string) (string, string, error) {
		ac, err := lookup(host)
		if err != nil {
			return "", "", err
		}
		if ac.IdentityToken != "" {
			return "", ac.IdentityToken, nil
		}
		return ac.Username, ac.Password, nil
	}
	registryToken = func(host string) (string, error) {
		ac, err := lookup(host)
		var he *HelperError
		if errors.As(err, &he) {
			return "", nil // the credentials path reports helper failures
		}
		if err != nil {
			return "", err
		}
		return ac.RegistryToken, nil
	}
	return credentials, registryToken
}

// authLookup is one host's answer, looked up once.
type authLookup struct {
	once sync.Once
	ac   types.AuthConfig
	err  error
}

// readDockerAuth reads host's credentials from the Docker config in dir.
// A credential helper runs with its standard error discarded (docker/cli's
// own helper client passes it through to ours).
func readDockerAuth(dir, host string) (types.AuthConfig, error) {
	d := dockerConfigDir(dir)
	cf, err := dockerconfig.Load(d)
	if err != nil {
		return types.AuthConfig{}, fmt.Errorf("read docker config in %s: %w", d, errors.Unwrap(err))
	}
	key := dockerAuthKey(host)
	helperErr := func(helper string, err error) error {
		return &HelperError{Helper: "docker-credential-" + helper, Config: filepath.Join(d, dockerconfig.ConfigFileName), Err: err}
	}
	helper := cf.CredentialHelpers[key]
	if helper == "" {
		helper = cf.CredentialsStore
	}
	if helper == "" || inDockerAuthConfigEnv(key) {
		// No helper to run (DOCKER_AUTH_CONFIG answers before any).
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return types.AuthConfig{}, helperErr(credStoreName(cf.CredentialHelpers[key], cf.CredentialsStore), err)
		}
		return ac, nil
	}
	// What config.json keeps beside a helper (a registry token), as
	// docker's native store starts from it.
	ac, _ := clicredentials.NewFileStore(cf).Get(key)
	creds, err := helperclient.Get(quietHelper(helper), key)
	switch {
	case helpercredentials.IsErrCredentialsNotFound(err):
		ac.Username, ac.Password, ac.IdentityToken = "", "", ""
		return ac, nil
	case err != nil:
		return types.AuthConfig{}, helperErr(helper, err)
	}
	ac.Username, ac.Password, ac.IdentityToken = creds.Username, creds.Secret, ""
	if creds.Username == helperTokenUsername {
		ac.Username, ac.Password, ac.IdentityToken = "", "", creds.Secret
	}
	return ac, nil
}

// helperTokenUsername is the username a credential helper stores an
// identity token under (docker's convention).
const helperTokenUsername = "<token>"

// inDockerAuthConfigEnv reports whether $DOCKER_AUTH_CONFIG (docker's
// credentials from the environment, asked before any helper) has key.
func inDockerAuthConfigEnv(key string) bool {
	v := os.Getenv("DOCKER_AUTH_CONFIG")
	if v == "" {
		return false
	}
	var env struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if json.Unmarshal([]byte(v), &env) != nil {
		return false
	}
	_, ok := env.Auths[key]
	return ok
}

// quietHelper runs docker-credential-<name> with its standard error kept
// from ours: a failing helper's message could quote anything, and
// HelperError says which helper failed and its exit status.
func quietHelper(name string) helperclient.ProgramFunc {
	return func(args ...string) helperclient.Program {
		return &quietProgram{cmd: exec.Command("docker-credential-"+name, args...)}
	}
}

type quietProgram struct{ cmd *exec.Cmd }

// Output runs the helper; its standard error goes to the ExitError only.
func (p *quietProgram) Output() ([]byte, error) { return p.cmd.Output() }

// Input sets the helper's standard input.
func (p *quietProgram) Input(in io.Reader) { p.cmd.Stdin = in }

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

// Save stores username and secret for registry ("host[:port]";
// Docker Hub under its usual key) where docker login does: config.json
// in dir ("" means $DOCKER_CONFIG, default ~/.docker), or the credential
// store or helper it names. It does not check them: CheckLogin does.
func Save(dir, registry, username, secret string) error {
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

// Erase removes registry's credentials from where
// Save stores them, as docker logout does.
func Erase(dir, registry string) error {
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

// HelperError is a Docker credential helper (credsStore or
// credHelpers in config.json) that is missing or failed. Its message names
// the helper and how it failed (not found, its exit status) but not what
// it printed, which could quote anything.
type HelperError struct {
	Helper string // "docker-credential-pass"
	Config string // the config.json naming it
	Err    error
}

func (e *HelperError) Error() string {
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
func (e *HelperError) Unwrap() error { return e.Err }
