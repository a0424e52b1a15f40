package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/errdefs"
)

// idleConnsPerHost is how many idle connections to one registry host a
// client keeps: at least as many as uploads may be in flight
// (imageservice's default is 64), so that an upload's PUT reuses its
// POST's connection and the next upload the last one's, instead of
// dialing anew — a round trip each across a link, and at least two with
// TLS. Go's default keeps 2 per host and containerd's 10 in all.
const idleConnsPerHost = 128

// DefaultResponseHeaderTimeout is how long a registry may take to answer a
// request it has received in full (the commit of a large blob included).
const DefaultResponseHeaderTimeout = 10 * time.Minute

// HostsConfig says how to reach registries. The zero value reaches every
// registry over HTTPS (loopback ones over HTTP) anonymously.
type HostsConfig struct {
	// HostsDirs are directories in containerd's certs.d layout
	// (<dir>/<host>/hosts.toml, or Docker's *.crt/*.cert/*.key files): the
	// first one that has a directory for the host is used. Default: none.
	HostsDirs []string
	// Credentials returns the username and secret for a registry host
	// (an empty username with a secret is an identity token). Default:
	// anonymous.
	Credentials func(host string) (username, secret string, err error)
	// RegistryToken returns a bearer token to send as it is to a registry
	// host (Docker's "registrytoken"), or "" to use Credentials. Default:
	// none.
	RegistryToken func(host string) (string, error)
	// ResponseHeaderTimeout bounds the wait for a registry's answer once a
	// request is sent (default DefaultResponseHeaderTimeout: generous, as
	// the commit of a large blob can take minutes; containerd's own is 30 s).
	ResponseHeaderTimeout time.Duration
	// PlainHTTP talks HTTP to every registry.
	PlainHTTP bool
	// Insecure lists registry hosts ("host[:port]") whose certificates are
	// not verified and which fall back to plain HTTP when HTTPS fails, as
	// nerdctl's --insecure-registry does.
	Insecure []string
}

// RegistryHosts builds containerd's registry host configuration from c:
// hosts.toml (server, mirrors, capabilities — a mirror without the push
// capability is never pushed to —, CA, client certificates, skip_verify,
// headers) through containerd's core/remotes/docker/config.
func RegistryHosts(c HostsConfig) docker.RegistryHosts {
	timeout := c.ResponseHeaderTimeout
	if timeout <= 0 {
		timeout = DefaultResponseHeaderTimeout
	}
	return func(host string) ([]docker.RegistryHost, error) {
		opts := config.HostOptions{Credentials: credentialsFor(c.Credentials), UpdateClient: func(client *http.Client) error {
			if t, ok := client.Transport.(*http.Transport); ok {
				t = t.Clone()
				t.ResponseHeaderTimeout = timeout
				t.MaxIdleConnsPerHost = idleConnsPerHost
				t.MaxIdleConns = 0 // no bound across hosts: each host has its own
				t.DialContext = predials.dialWith(t.DialContext)
				client.Transport = t
			}
			return nil
		}}
		if len(c.HostsDirs) > 0 {
			opts.HostDir = hostDirFromRoots(c.HostsDirs)
		}
		switch {
		case c.PlainHTTP:
			opts.DefaultScheme = "http"
		case contains(c.Insecure, host):
			// HTTPS without verification first, HTTP when the server does
			// not speak TLS (containerd's HTTP fallback does the switch).
			opts.DefaultScheme = "http"
			opts.DefaultTLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it
		case docker.IsLocalhost(host):
			opts.DefaultScheme = "http"
		}
		hosts, err := config.ConfigureHosts(context.Background(), opts)(host)
		if err != nil {
			return nil, fmt.Errorf("registry configuration for %s: %w", host, err)
		}
		for _, h := range hosts {
			if err := checkHeaders(h.Header); err != nil {
				return nil, fmt.Errorf("registry configuration for %s: in the [host.\"%s://%s\"] entry of its hosts.toml (under %s): %w", host, h.Scheme, h.Host, strings.Join(c.HostsDirs, ":"), err)
			}
			if h.Host == "" {
				// containerd accepts [host."#x"] and would send requests to
				// "https:///v2" later; say which file is wrong now.
				return nil, fmt.Errorf("registry configuration for %s: a [host] entry in its hosts.toml (under %s) has no host name: write it as \"https://HOST[:PORT]\"", host, strings.Join(c.HostsDirs, ":"))
			}
		}
		if c.RegistryToken != nil {
			token, err := c.RegistryToken(host)
			if err != nil {
				return nil, err
			}
			if token != "" {
				for i := range hosts {
					hosts[i].Authorizer = nil
					hosts[i].Header = hosts[i].Header.Clone()
					if hosts[i].Header == nil {
						hosts[i].Header = http.Header{}
					}
					hosts[i].Header.Set("Authorization", "Bearer "+token)
				}
			}
		}
		return hosts, nil
	}
}

// hostDirFromRoots looks for <root>/<host> in each root in turn, as nerdctl
// does with /etc/containerd/certs.d:/etc/docker/certs.d.
func hostDirFromRoots(roots []string) func(string) (string, error) {
	return func(host string) (string, error) {
		for _, root := range roots {
			dir, err := config.HostDirFromRoot(root)(host)
			if err == nil && dir != "" {
				return dir, nil
			}
			if err != nil && !errdefs.IsNotFound(err) {
				return "", err
			}
			// Docker's certs.d names a host:port directory "host:port";
			// containerd's lookup handles that and the default too.
		}
		return "", errdefs.ErrNotFound
	}
}

func contains(hosts []string, host string) bool {
	for _, h := range hosts {
		h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
		if h == host {
			return true
		}
		if hh, _, err := net.SplitHostPort(host); err == nil && h == hh {
			return true
		}
	}
	return false
}

// SplitHostsDirs splits a colon-separated list of directories, dropping
// empty entries.
func SplitHostsDirs(list string) []string {
	var out []string
	for _, d := range filepath.SplitList(list) {
		if d != "" {
			out = append(out, d)
		}
	}
	return out
}

// CredentialsError is a failure to get credentials for a registry host
// (a Docker credential helper that is missing or fails): the request that
// needed them is not sent without them and reported as a 401.
type CredentialsError struct {
	Host string
	Err  error
}

func (e *CredentialsError) Error() string {
	return fmt.Sprintf("credentials for %s: %v", e.Host, e.Err)
}

// Unwrap returns the cause.
func (e *CredentialsError) Unwrap() error { return e.Err }

// credentialsFor marks the errors of creds as CredentialsErrors.
func credentialsFor(creds func(string) (string, string, error)) func(string) (string, string, error) {
	if creds == nil {
		return nil
	}
	return func(host string) (string, string, error) {
		u, s, err := creds(host)
		if err != nil {
			var ce *CredentialsError
			if !errors.As(err, &ce) {
				err = &CredentialsError{Host: host, Err: err}
			}
		}
		return u, s, err
	}
}

// checkHeaders refuses header names and values net/http would refuse to
// send (at every attempt of every request, which would be retried as if
// the registry were at fault): a name that is not an HTTP token, a value
// with a control character (a line break in a TOML string).
func checkHeaders(h http.Header) error {
	for k, vs := range h {
		if k == "" || strings.IndexFunc(k, func(c rune) bool { return !isTokenChar(c) }) >= 0 {
			return fmt.Errorf("header name %q is not a valid HTTP header name", k)
		}
		for _, v := range vs {
			if i := strings.IndexFunc(v, func(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }); i >= 0 {
				return fmt.Errorf("header %s: its value %q has a control character (%q), which HTTP does not allow", k, v, v[i])
			}
		}
	}
	return nil
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110).
func isTokenChar(c rune) bool {
	return c < 0x7f && c > ' ' && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
}
