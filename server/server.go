// Package server answers the image-distribution part of the Docker Engine
// API — ping, version, login; image list, inspect, history, tag, remove
// and prune; push and pull with Docker's JSON message stream; load and
// save of archives; import of a root filesystem — on an
// imageservice.Service, so the docker CLI and Docker SDKs work on a
// containerd store through ctrpush.
//
// Every other endpoint answers 404 with a JSON message saying so.
// Credentials from X-Registry-Auth serve the request that carried them and
// are never stored or logged. Identical pushes running at once (same
// registry, reference, platform and credentials) share one transfer.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/system"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/progress"
)

const (
	// APIVersion is the Engine API version this server speaks: that of
	// the moby API module whose types it writes. Clients negotiate down.
	APIVersion = "1.56"
	// MinAPIVersion is the oldest client API version accepted (Docker
	// 19.03; Debian's docker.io 20.10 client speaks 1.41). The push
	// subset has not changed since.
	MinAPIVersion = "1.40"
)

// Config is what a Server needs. Service is required.
type Config struct {
	Service *imageservice.Service
	// Hosts is the registry configuration (hosts.toml directories,
	// insecure registries, timeouts). Its Credentials and RegistryToken
	// are replaced, per request, by the request's X-Registry-Auth.
	Hosts imageservice.HostsConfig
	// PushOptions apply to every push (e.g. WithMaxConcurrentUploads).
	PushOptions []imageservice.TransferOption
	// Version is reported by /version (default "dev").
	Version string
	// OnCredentials, when set, is told each request's X-Registry-Auth
	// credentials before they are used (the username and each secret: a
	// password, an identity or registry token), so the host can keep them
	// out of what it logs.
	OnCredentials func(username, secret string)
}

// Server is an http.Handler for the image-distribution subset of the
// Docker Engine API.
type Server struct {
	cfg    Config
	ctx    context.Context // parent of every transfer
	cancel context.CancelFunc

	mu        sync.Mutex
	transfers map[transferKey]*transfer
	running   sync.WaitGroup
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil {
		return nil, fmt.Errorf("server: no image service: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if err := imageservice.CheckTransferOptions(cfg.PushOptions...); err != nil {
		return nil, fmt.Errorf("server: push options: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, ctx: ctx, cancel: cancel, transfers: map[transferKey]*transfer{}}, nil
}

// Drain waits for running pushes to finish until ctx is done, then
// cancels those still running (their leases are released as they end) and
// waits for them. New pushes are refused once Drain has been called.
func (s *Server) Drain(ctx context.Context) {
	s.mu.Lock()
	s.transfers = nil
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.route(rec, r)
	// The path and status only: never headers (X-Registry-Auth) or bodies.
	log.G(r.Context()).WithFields(log.Fields{
		"method": r.Method, "path": r.URL.Path, "status": rec.status, "duration": time.Since(start).Round(time.Millisecond),
	}).Info("api request")
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Api-Version", APIVersion)
	h.Set("Server", "ctrpush/"+s.cfg.Version+" ("+runtime.GOOS+")")
	h.Set("Docker-Experimental", "false")
	h.Set("Ostype", runtime.GOOS)

	path, err := stripVersion(r.URL.Path)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	for _, e := range endpoints {
		if name, ok := e.match(path, r.Method); ok {
			e.handle(s, w, r, name)
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Errorf("ctrpush serves only the image-distribution subset of the Docker Engine API (%s); %s %s is not part of it", endpointNames(), r.Method, r.URL.Path))
}

// Endpoint is one route of the Docker Engine API the server answers, as
// `ctrpush serve --help` lists it.
type Endpoint struct {
	Methods []string // GET, HEAD, POST, DELETE
	Path    string   // as Docker's API reference writes it: /images/{name}/push
	What    string   // what it does, in a few words
}

type endpoint struct {
	Endpoint
	name   string // in the 404's list of what is served
	handle func(s *Server, w http.ResponseWriter, r *http.Request, name string)
}

// endpoints is every route, in the order they are matched (the fixed
// /images/json before /images/{name}/json). The help and the 404 answer
// are built from it, so neither can name a route that is not served or
// miss one that is.
var endpoints = []endpoint{
	{Endpoint{[]string{"GET", "HEAD"}, "/_ping", "health check"}, "ping", func(s *Server, w http.ResponseWriter, r *http.Request, _ string) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.Set("Pragma", "no-cache")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("OK"))
		}
	}},
	{Endpoint{[]string{"GET"}, "/version", "ctrpush's version and API versions"}, "version", func(s *Server, w http.ResponseWriter, _ *http.Request, _ string) {
		writeJSON(w, http.StatusOK, system.VersionResponse{
			Platform:      system.PlatformInfo{Name: "ctrpush"},
			Version:       s.cfg.Version,
			APIVersion:    APIVersion,
			MinAPIVersion: MinAPIVersion,
			Os:            runtime.GOOS,
			Arch:          runtime.GOARCH,
			GoVersion:     runtime.Version(),
			Components:    []system.ComponentVersion{{Name: "ctrpush", Version: s.cfg.Version}},
		})
	}},
	{Endpoint{[]string{"POST"}, "/auth", "docker login: checks credentials, stores nothing"}, "auth", func(s *Server, w http.ResponseWriter, r *http.Request, _ string) { s.login(w, r) }},
	{Endpoint{[]string{"GET"}, "/images/json", "docker images"}, "list", func(s *Server, w http.ResponseWriter, r *http.Request, _ string) { s.list(w, r) }},
	{Endpoint{[]string{"POST"}, "/images/create", "docker pull (fromImage), docker import (fromSrc)"}, "pull, import", func(s *Server, w http.ResponseWriter, r *http.Request, _ string) { s.pull(w, r) }},
	{Endpoint{[]string{"POST"}, "/images/load", "docker load"}, "load", func(s *Server, w http.ResponseWriter, r *http.Request, _ string) { s.load(w, r) }},
	{Endpoint{[]string{"GET"}, "/images/get", "docker save of several images"}, "save", func(s *Server, w http.ResponseWriter, r *http.Request, _ string) {
		s.save(w, r, splitNames(r.URL.Query()["names"]))
	}},
	{Endpoint{[]string{"POST"}, "/images/prune", "docker image prune"}, "prune", func(s *Server, w http.ResponseWriter, r *http.Request, _ string) { s.prune(w, r) }},
	{Endpoint{[]string{"POST"}, "/images/{name}/push", "docker push, with X-Registry-Auth and Docker's JSON progress"}, "push", func(s *Server, w http.ResponseWriter, r *http.Request, name string) { s.push(w, r, name) }},
	{Endpoint{[]string{"POST"}, "/images/{name}/tag", "docker tag"}, "tag", func(s *Server, w http.ResponseWriter, r *http.Request, name string) { s.tag(w, r, name) }},
	{Endpoint{[]string{"GET"}, "/images/{name}/json", "docker image inspect"}, "inspect", func(s *Server, w http.ResponseWriter, r *http.Request, name string) { s.inspect(w, r, name) }},
	{Endpoint{[]string{"GET"}, "/images/{name}/history", "docker history"}, "history", func(s *Server, w http.ResponseWriter, r *http.Request, name string) { s.history(w, r, name) }},
	{Endpoint{[]string{"GET"}, "/images/{name}/get", "docker save of one image"}, "", func(s *Server, w http.ResponseWriter, r *http.Request, name string) { s.save(w, r, []string{name}) }},
	{Endpoint{[]string{"DELETE"}, "/images/{name}", "docker rmi"}, "remove", func(s *Server, w http.ResponseWriter, r *http.Request, name string) { s.remove(w, r, name) }},
}

// match reports whether the route answers method on path (without the
// /v1.NN prefix), and the image name in it.
func (e endpoint) match(path, method string) (string, bool) {
	if !slices.Contains(e.Methods, method) {
		return "", false
	}
	if prefix, suffix, ok := strings.Cut(e.Path, "{name}"); ok && prefix == "/images/" {
		return imagePath(path, suffix)
	}
	return "", path == e.Path
}

// Endpoints lists the routes the server answers, in the order it matches
// them (for `ctrpush serve --help`).
func Endpoints() []Endpoint {
	out := make([]Endpoint, len(endpoints))
	for i, e := range endpoints {
		out[i] = e.Endpoint
	}
	return out
}

func endpointNames() string {
	var names []string
	for _, e := range endpoints {
		if e.name != "" {
			names = append(names, e.name)
		}
	}
	return strings.Join(names, ", ")
}

// stripVersion removes a "/v1.NN" prefix, refusing versions this server
// does not speak (with moby's words).
func stripVersion(path string) (string, error) {
	if !strings.HasPrefix(path, "/v") {
		return path, nil
	}
	rest := path[2:]
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return path, nil
	}
	v := rest[:i]
	if !isVersion(v) {
		return path, nil
	}
	switch {
	case versionLess(v, MinAPIVersion):
		return "", fmt.Errorf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinAPIVersion)
	case versionLess(APIVersion, v):
		return "", fmt.Errorf("client version %s is too new. Maximum supported API version is %s", v, APIVersion)
	}
	return rest[i:], nil
}

func isVersion(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	_, err1 := strconv.Atoi(major)
	_, err2 := strconv.Atoi(minor)
	return err1 == nil && err2 == nil
}

func versionLess(a, b string) bool {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	ai, _ := strconv.Atoi(am)
	bi, _ := strconv.Atoi(bm)
	if ai != bi {
		return ai < bi
	}
	aj, _ := strconv.Atoi(an)
	bj, _ := strconv.Atoi(bn)
	return aj < bj
}

// imagePath returns NAME from "/images/NAME" + suffix (NAME may hold
// slashes: "registry:5000/team/app").
func imagePath(path, suffix string) (string, bool) {
	if !strings.HasPrefix(path, "/images/") || !strings.HasSuffix(path, suffix) {
		return "", false
	}
	name := strings.TrimSuffix(strings.TrimPrefix(path, "/images/"), suffix)
	return name, name != ""
}

// push answers POST /images/{name}/push?tag=&platform=&referrers=&referrersType=.
// The Engine API has no referrers parameter: referrers=1 (or true) is
// ctrpush's, for WithReferrers (push the image's signatures and SBOMs
// after it); absent or 0, they stay behind as with docker push.
// referrersType=T (repeatable, like the Engine API's names= of GET
// /images/get; camelCase like its fromImage=) keeps only the image's
// referrers of artifact type T, as push --referrers-type does, and
// implies referrers=1.
func (s *Server) push(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	ref, err := pushReference(name, q.Get("tag"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	auth, authKey, err := s.requestAuth(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	platform, err := platformParam(q.Get("platform"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	referrers, err := boolParam(q, "referrers")
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	types, err := referrersTypeParam(q, referrers)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	referrers = referrers || len(types) > 0
	if err := s.exists(r.Context(), ref); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	opts := append([]imageservice.TransferOption{}, s.cfg.PushOptions...)
	if referrers {
		opts = append(opts, imageservice.WithReferrers(types...))
	}
	opts = append(opts, imageservice.WithRegistryHosts(s.hostsFor(auth)))
	if platform != "" {
		opts = append(opts, imageservice.WithPlatforms(platform))
	}
	key := transferKey{registry: reference.Domain(ref), ref: ref.String(), platform: platform, referrers: referrers, referrersTypes: strings.Join(types, ","), auth: authKey}
	t, err := s.start(key, ref.String(), opts)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	defer t.leave()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	t.stream(r.Context(), w)
}

// start joins the running transfer for key or starts one.
func (s *Server) start(key transferKey, ref string, opts []imageservice.TransferOption) (*transfer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transfers == nil {
		return nil, errors.New("ctrpush is shutting down")
	}
	if t, ok := s.transfers[key]; ok && t.join() {
		return t, nil
	}
	t := newTransfer(s.ctx)
	t.join()
	s.transfers[key] = t
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		sink := progress.NewJSON(t)
		if _, err := s.cfg.Service.Push(t.ctx, ref, append(opts, imageservice.WithProgress(sink))...); err != nil {
			sink.Fail(err)
		}
		s.mu.Lock()
		if s.transfers[key] == t {
			delete(s.transfers, key)
		}
		s.mu.Unlock()
		t.finish()
	}()
	return t, nil
}

// pushReference is the reference a push request names: NAME with ?tag=,
// or without tag every tag of the repository (docker push --all-tags).
func pushReference(name, tag string) (reference.Named, error) {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, fmt.Errorf("invalid reference %q: %w", name, err)
	}
	if _, ok := ref.(reference.Digested); ok {
		return nil, fmt.Errorf("invalid reference %q: push a tag, not a digest", name)
	}
	if tag == "" {
		return ref, nil
	}
	if _, ok := ref.(reference.Tagged); ok {
		return nil, fmt.Errorf("invalid reference %q: the name has a tag and the request another (%q)", name, tag)
	}
	tagged, err := reference.WithTag(ref, tag)
	if err != nil {
		return nil, fmt.Errorf("invalid tag %q: %w", tag, err)
	}
	return tagged, nil
}

// exists answers Docker's "no such image" before the stream starts.
func (s *Server) exists(ctx context.Context, ref reference.Named) error {
	if _, ok := ref.(reference.Tagged); ok {
		if _, err := s.cfg.Service.Image(ctx, ref.String()); err != nil {
			if errdefs.IsNotFound(err) {
				return noSuchTag(ref)
			}
			return err
		}
		return nil
	}
	tags, err := s.cfg.Service.Tags(ctx, ref.Name())
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		return noSuchTag(ref)
	}
	return nil
}

func noSuchTag(ref reference.Named) error {
	return noSuchTagError{name: reference.FamiliarName(ref)}
}

// noSuchTagError is Docker's message for a push of an image it does not
// have; it wraps errdefs.ErrNotFound.
type noSuchTagError struct{ name string }

func (e noSuchTagError) Error() string {
	return "An image does not exist locally with the tag: " + e.name
}

func (e noSuchTagError) Unwrap() error { return errdefs.ErrNotFound }

// boolParam reads a boolean query parameter as the Engine API does
// ("1", "true"; absent, "" or "0" false).
func boolParam(q url.Values, name string) (bool, error) {
	switch strings.ToLower(q.Get(name)) {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, fmt.Errorf("invalid %s %q: want 1 or 0", name, q.Get(name))
}

// referrersTypeParam reads the repeatable ?referrersType=, sorted and
// each once. It cannot go with an explicit referrers=0.
func referrersTypeParam(q url.Values, referrers bool) ([]string, error) {
	types := slices.Clone(q["referrersType"])
	if len(types) == 0 {
		return nil, nil
	}
	if q.Get("referrers") != "" && !referrers {
		return nil, fmt.Errorf("referrersType=%s with referrers=%s: drop referrers=%s (referrersType implies referrers=1)", types[0], q.Get("referrers"), q.Get("referrers"))
	}
	if err := imageservice.CheckArtifactTypes(types...); err != nil {
		var oe *imageservice.OptionError
		if errors.As(err, &oe) {
			return nil, fmt.Errorf("invalid referrersType %q: %w", oe.Value, oe.Err)
		}
		return nil, err
	}
	slices.Sort(types)
	return slices.Compact(types), nil
}

// platformParam reads ?platform=: a JSON OCI platform (what the docker
// CLI sends) or "os/arch[/variant]".
func platformParam(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	var p ocispec.Platform
	if strings.HasPrefix(strings.TrimSpace(v), "{") {
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return "", fmt.Errorf("invalid platform %q: %w", v, err)
		}
		if p.OS == "" && p.Architecture == "" {
			return "", nil
		}
	} else {
		var err error
		if p, err = platforms.Parse(v); err != nil {
			return "", fmt.Errorf("invalid platform %q: %w", v, err)
		}
	}
	return platforms.FormatAll(platforms.Normalize(p)), nil
}

// requestAuth is the request's X-Registry-Auth (decodeAuth), told to
// OnCredentials.
func (s *Server) requestAuth(r *http.Request) (*registry.AuthConfig, string, error) {
	ac, key, err := decodeAuth(r.Header.Get(registry.AuthHeader))
	if ac != nil && s.cfg.OnCredentials != nil {
		for _, secret := range []string{ac.Password, ac.IdentityToken, ac.RegistryToken} {
			if secret != "" {
				s.cfg.OnCredentials(ac.Username, secret)
			}
		}
	}
	return ac, key, err
}

// decodeAuth reads X-Registry-Auth: base64url JSON of an AuthConfig.
// Empty or "{}" means anonymous (nil). The key identifies the credentials
// (a hash) for sharing transfers; the header's content is never quoted.
func decodeAuth(h string) (*registry.AuthConfig, string, error) {
	if h == "" {
		return nil, "", nil
	}
	b, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		if b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "=")); err != nil {
			return nil, "", errors.New("invalid X-Registry-Auth header: not base64url")
		}
	}
	var ac registry.AuthConfig
	if err := json.Unmarshal(b, &ac); err != nil {
		return nil, "", errors.New("invalid X-Registry-Auth header: not a JSON auth configuration")
	}
	if ac.Auth != "" && ac.Username == "" && ac.Password == "" {
		raw, err := base64.StdEncoding.DecodeString(ac.Auth)
		if err != nil {
			return nil, "", errors.New("invalid X-Registry-Auth header: its auth field is not base64")
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, "", errors.New("invalid X-Registry-Auth header: its auth field is not user:password")
		}
		ac.Username, ac.Password = user, pass
	}
	ac.Auth, ac.ServerAddress = "", ""
	if ac == (registry.AuthConfig{}) {
		return nil, "", nil
	}
	canon, _ := json.Marshal(ac)
	sum := sha256.Sum256(canon)
	return &ac, hex.EncodeToString(sum[:]), nil
}

// hostsFor is the registry configuration with one request's credentials.
func (s *Server) hostsFor(ac *registry.AuthConfig) docker.RegistryHosts {
	c := s.cfg.Hosts
	c.Credentials, c.RegistryToken = nil, nil
	if ac != nil {
		c.Credentials, c.RegistryToken = imageservice.AuthConfigCredentials(imageservice.AuthConfig{
			Username: ac.Username, Password: ac.Password, IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
		})
	}
	return imageservice.RegistryHosts(c)
}

// login answers POST /auth: the credentials in the body are checked
// against the registry they name, as docker login through a daemon does.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var ac registry.AuthConfig
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&ac); err != nil {
		writeError(w, http.StatusBadRequest, errors.New("invalid auth configuration in the request body"))
		return
	}
	host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(ac.ServerAddress, "https://"), "http://"), "/")
	if host == "" || host == "index.docker.io/v1" {
		host = "docker.io"
	}
	if err := imageservice.CheckLogin(r.Context(), s.hostsFor(&ac), host); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, registry.AuthResponse{Status: "Login Succeeded"})
}

// tag answers POST /images/{name}/tag?repo=&tag=.
func (s *Server) tag(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	target := q.Get("repo")
	if t := q.Get("tag"); t != "" {
		target += ":" + t
	}
	if _, err := s.cfg.Service.Tag(r.Context(), name, target); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// writeError sends moby's error body: {"message": "..."}.
func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, common.ErrorResponse{Message: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// statusOf maps containerd's error kinds to HTTP statuses as moby does.
func statusOf(err error) int {
	switch {
	case errdefs.IsNotFound(err):
		return http.StatusNotFound
	case errdefs.IsInvalidArgument(err):
		return http.StatusBadRequest
	case errdefs.IsConflict(err), errdefs.IsAlreadyExists(err):
		return http.StatusConflict
	case errdefs.IsUnauthorized(err):
		return http.StatusUnauthorized
	case errdefs.IsPermissionDenied(err):
		return http.StatusForbidden
	case errdefs.IsNotImplemented(err):
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
