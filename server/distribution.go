package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/imageservice"
	"github.com/ctrpush/ctrpush/progress"
)

// lazyWriter sends the response's status and content type with its first
// byte, so an operation that fails before writing anything still answers
// with an HTTP error (as dockerd does before its stream has started).
type lazyWriter struct {
	w           http.ResponseWriter
	contentType string
	flush       bool // after every write: a message stream, not bulk data
	started     bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", l.contentType)
		l.w.WriteHeader(http.StatusOK)
	}
	n, err := l.w.Write(p)
	if l.flush {
		_ = http.NewResponseController(l.w).Flush()
	}
	return n, err
}

// operationContext is the request's context, also cancelled when the
// server drains; done must be called when the operation ends.
func (s *Server) operationContext(r *http.Request) (ctx context.Context, done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transfers == nil {
		return nil, nil, errors.New("ctrpush is shutting down")
	}
	s.running.Add(1)
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel(); s.running.Done() }, nil
}

// pull answers POST /images/create?fromImage=&tag=&platform= with
// Docker's pull stream: one tag or digest, or without either every tag of
// the repository (docker pull --all-tags); fromSrc is docker import.
func (s *Server) pull(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if src := q.Get("fromSrc"); src != "" {
		s.importRootFS(w, r, src)
		return
	}
	ref, err := pullReference(q.Get("fromImage"), q.Get("tag"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	auth, _, err := s.requestAuth(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	platform, err := platformParam(q.Get("platform"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, done, err := s.operationContext(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	defer done()
	opts := append([]imageservice.TransferOption{}, s.cfg.PushOptions...)
	opts = append(opts, imageservice.WithRegistryHosts(s.hostsFor(auth)))
	if platform != "" {
		opts = append(opts, imageservice.WithPlatforms(platform))
	}
	out := &lazyWriter{w: w, contentType: "application/json", flush: true}
	fail := func(err error) {
		if !out.started {
			writeError(w, statusOf(err), err)
			return
		}
		progress.NewJSON(out).Fail(err)
	}
	if !reference.IsNameOnly(ref) {
		if err := s.pullTag(ctx, out, ref, platform, opts); err != nil {
			fail(err)
		}
		return
	}
	// docker pull --all-tags: each tag the registry lists, in its order,
	// each with its own stream as dockerd's containerd store sends it.
	tags, err := s.cfg.Service.RemoteTags(ctx, ref.String(), opts...)
	if err != nil {
		fail(tagsError(ref, err))
		return
	}
	for _, tag := range tags {
		tagged, err := reference.WithTag(ref, tag)
		if err != nil {
			continue // not a valid tag: dockerd skips it too
		}
		if err := s.pullTag(ctx, out, tagged, platform, opts); err != nil {
			fail(wrapKind(err, "error pulling %s: %s", tagged.String(), err))
			return
		}
	}
}

// importRootFS answers POST /images/create?fromSrc=-&repo=&tag=&message=
// &changes=&platform= (docker import) with the root filesystem tar in the
// body: {"status":"sha256:ID"}, as dockerd answers. fromSrc=URL downloads
// the tar from there, as dockerd does.
func (s *Server) importRootFS(w http.ResponseWriter, r *http.Request, src string) {
	q := r.URL.Query()
	name := q.Get("repo")
	if name != "" {
		ref, err := reference.ParseNormalizedNamed(name)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("invalid reference format: %q: %w", name, err))
			return
		}
		if tag := q.Get("tag"); tag != "" {
			tagged, err := reference.WithTag(reference.TrimNamed(ref), tag)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("invalid tag %q: %w", tag, err))
				return
			}
			ref = tagged
		}
		name = ref.String()
	}
	p, err := platformParam(q.Get("platform"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	opts := imageservice.RootFSOptions{Name: name, Message: q.Get("message"), Changes: q["changes"]}
	if p != "" {
		pl := platforms.MustParse(p)
		opts.Platform = &pl
	}
	ctx, done, err := s.operationContext(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	defer done()
	if src == "-" {
		im, err := s.cfg.Service.ImportRootFS(ctx, r.Body, opts)
		if err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, jsonstream.Message{Status: im.Target.Digest.String()})
		return
	}
	// docker import URL: dockerd downloads it (a source without a scheme
	// is http://), saying so on the stream, then answers the ID on it.
	if !strings.Contains(src, "://") {
		src = "http://" + src
	}
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		writeError(w, http.StatusBadRequest, fmt.Errorf("invalid import source %q: want - (the request body) or an http(s) URL", src))
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	resp, err := importClient.Do(req)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("download %s: %w", u.Redacted(), err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		writeError(w, http.StatusBadGateway, fmt.Errorf("download %s: %s", u.Redacted(), resp.Status))
		return
	}
	out := &lazyWriter{w: w, contentType: "application/json", flush: true}
	enc := json.NewEncoder(out)
	_ = enc.Encode(jsonstream.Message{Status: "Downloading from " + u.Redacted()})
	im, err := s.cfg.Service.ImportRootFS(ctx, resp.Body, opts)
	if err != nil {
		_ = enc.Encode(jsonstream.Message{Error: &jsonstream.Error{Message: err.Error()}})
		return
	}
	_ = enc.Encode(jsonstream.Message{Status: im.Target.Digest.String()})
}

// importClient downloads what docker import is given as a URL: the
// environment's proxy, a bound on the wait for the answer's header (the
// body may take as long as it takes; the request's context ends it).
var importClient = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: time.Minute}}

// pullTag pulls ref (a tag or a digest) writing Docker's pull stream to
// out; its error is in dockerd's words.
func (s *Server) pullTag(ctx context.Context, out *lazyWriter, ref reference.Named, platform string, opts []imageservice.TransferOption) error {
	name := ref.String()
	var before digest.Digest
	if img, err := s.cfg.Service.Image(ctx, name); err == nil {
		before = img.Target.Digest
	}
	tag := "latest"
	if t, ok := ref.(reference.Tagged); ok {
		tag = t.Tag()
	} else if d, ok := ref.(reference.Digested); ok {
		tag = d.Digest().String()
	}
	sink := progress.NewPullJSON(out, reference.Path(ref), tag)
	res, err := s.cfg.Service.Pull(ctx, name, append(opts, imageservice.WithProgress(sink))...)
	if err != nil {
		return pullError(ref, platform, err, sink.Started())
	}
	sink.Done(res.Descriptor.Digest.String(), reference.FamiliarString(ref), before == res.Descriptor.Digest && !sink.Downloaded())
	return nil
}

// tagsError words a failed tag listing (docker pull --all-tags) as
// dockerd words a pull the registry refuses.
func tagsError(ref reference.Named, err error) error {
	if errdefs.IsNotFound(err) || errdefs.IsUnauthorized(err) || errdefs.IsPermissionDenied(err) {
		return apiErr(errdefs.ErrNotFound, "pull access denied for %s, repository does not exist or may require 'docker login'", reference.FamiliarName(ref))
	}
	return err
}

// wrapKind is an apiError with err's kind (the errdefs sentinel that sets
// the HTTP status).
func wrapKind(err error, format string, a ...any) error {
	for _, kind := range []error{errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrPermissionDenied, errdefs.ErrUnauthenticated, errdefs.ErrNotImplemented} {
		if errors.Is(err, kind) {
			return apiErr(kind, format, a...)
		}
	}
	return fmt.Errorf(format, a...)
}

// pullReference is the reference of a pull: fromImage with ?tag= (a tag or
// a digest), or fromImage naming its own tag or digest, or neither (every
// tag: the docker CLI and SDK send ?tag=latest for a plain name).
func pullReference(from, tag string) (reference.Named, error) {
	ref, err := reference.ParseNormalizedNamed(from)
	if err != nil {
		return nil, fmt.Errorf("invalid reference format: %q: %w", from, err)
	}
	if tag != "" {
		if _, ok := ref.(reference.NamedTagged); ok {
			return nil, fmt.Errorf("invalid reference %q: the name has a tag and the request another (%q)", from, tag)
		}
		if d, err := digest.Parse(tag); err == nil {
			return reference.WithDigest(reference.TrimNamed(ref), d)
		}
		t, err := reference.WithTag(ref, tag)
		if err != nil {
			return nil, fmt.Errorf("invalid tag %q: %w", tag, err)
		}
		return t, nil
	}
	return ref, nil
}

// pullError words a failed pull as dockerd does; resolved says the
// reference was found (the stream has started), so a later "not found" is
// about something else than the manifest and keeps its own words.
func pullError(ref reference.Named, platform string, err error, resolved bool) error {
	var pnf *imageservice.PlatformNotFoundError
	switch {
	case errors.As(err, &pnf):
		wanted := platform
		if wanted == "" && len(pnf.Wanted) > 0 {
			wanted = platforms.FormatAll(pnf.Wanted[0])
		}
		return apiErr(errdefs.ErrNotFound, "no matching manifest for %s in the manifest list entries", wanted)
	case resolved:
		return err
	case errdefs.IsNotFound(err):
		return apiErr(errdefs.ErrNotFound, "manifest for %s not found: manifest unknown: manifest unknown", reference.FamiliarString(ref))
	case errdefs.IsUnauthorized(err), errdefs.IsPermissionDenied(err):
		return apiErr(errdefs.ErrPermissionDenied, "pull access denied for %s, repository does not exist or may require 'docker login'", reference.FamiliarName(ref))
	}
	return err
}

// load answers POST /images/load?quiet=: a docker save or OCI archive in
// the body; "Loaded image: NAME" per image in Docker's JSON stream.
func (s *Server) load(w http.ResponseWriter, r *http.Request) {
	ps, err := platformParams(r.URL.Query()["platform"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, done, err := s.operationContext(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	defer done()
	var opts []imageservice.ImportOption
	if len(ps) > 0 {
		opts = append(opts, imageservice.WithImportPlatforms(ps...))
	}
	// An image saved by ID comes back without a name, as with dockerd.
	opts = append(opts, imageservice.WithDanglingNames())
	imported, err := s.cfg.Service.ImportStream(ctx, r.Body, "the uploaded archive", opts...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if err != nil {
		// dockerd reports a failed load in the stream, after its 200.
		_ = enc.Encode(jsonstream.Message{Error: &jsonstream.Error{Message: loadError(err).Error()}})
		return
	}
	for _, im := range imported {
		if imageservice.IsDangling(im.Name) {
			_ = enc.Encode(jsonstream.Message{Stream: "Loaded image ID: " + im.Target.Digest.String() + "\n"})
			continue
		}
		name := im.Name
		if n, err := reference.ParseNormalizedNamed(name); err == nil {
			name = reference.FamiliarString(n)
		}
		_ = enc.Encode(jsonstream.Message{Stream: "Loaded image: " + name + "\n"})
	}
}

// loadError words a failed load as dockerd does.
func loadError(err error) error {
	var pnl *imageservice.PlatformNotLoadedError
	if errors.As(err, &pnl) {
		names := make([]string, len(pnl.Images))
		for i, n := range pnl.Images {
			names[i] = familiarTagged(n)
		}
		wanted := make([]string, len(pnl.Wanted))
		for i, p := range pnl.Wanted {
			wanted[i] = platforms.FormatAll(p)
		}
		// dockerd's words, though here nothing was kept.
		if len(names) == 1 {
			return apiErr(errdefs.ErrNotFound, "image %s was loaded, but doesn't provide the requested platform (%v)", names[0], wanted)
		}
		return apiErr(errdefs.ErrNotFound, "images [%s] were loaded, but don't provide the requested platform (%v)", strings.Join(names, ", "), wanted)
	}
	return err
}

// platformParams reads repeated ?platform= parameters (API 1.48+ sends one
// per platform), dropping empty ones.
func platformParams(vs []string) ([]ocispec.Platform, error) {
	var out []ocispec.Platform
	for _, v := range vs {
		p, err := platformParam(v)
		if err != nil {
			return nil, err
		}
		if p != "" {
			out = append(out, platforms.MustParse(p))
		}
	}
	return out, nil
}

// save answers GET /images/get?names=&platform= and GET
// /images/{name}/get: a tar archive (OCI layout + manifest.json).
func (s *Server) save(w http.ResponseWriter, r *http.Request, names []string) {
	q := r.URL.Query()
	if len(names) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("no image named: give names="))
		return
	}
	var opts []imageservice.ImageOption
	ps, err := platformParams(q["platform"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if len(ps) > 0 {
		opts = append(opts, imageservice.ForPlatforms(ps...))
	}
	ctx, done, err := s.operationContext(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	defer done()
	out := &lazyWriter{w: w, contentType: "application/x-tar"}
	if err := s.cfg.Service.Save(ctx, out, names, opts...); err != nil {
		if out.started {
			panic(http.ErrAbortHandler) // a truncated archive must not look whole
		}
		// The platform the image lacks, in dockerd's words.
		p := ""
		var pnf *imageservice.PlatformNotFoundError
		if errors.As(err, &pnf) && len(ps) > 0 && len(pnf.Wanted) > 0 {
			p = platforms.FormatAll(pnf.Wanted[0])
		}
		writeError(w, statusOf(err), imageError(names[0], p, err))
	}
}

// remove answers DELETE /images/{name}?force=&noprune=.
func (s *Server) remove(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	force, _ := strconv.ParseBool(q.Get("force"))
	noprune, _ := strconv.ParseBool(q.Get("noprune"))
	res, err := s.cfg.Service.Delete(r.Context(), name, imageservice.DeleteOptions{Force: force, NoPrune: noprune})
	if err != nil {
		writeError(w, statusOf(err), imageError(name, "", err))
		return
	}
	out := []image.DeleteResponse{}
	for _, n := range res.Untagged {
		if imageservice.IsDangling(n) {
			continue // no name: nothing untagged
		}
		if ref, err := reference.ParseNormalizedNamed(n); err == nil {
			n = reference.FamiliarString(ref)
		}
		out = append(out, image.DeleteResponse{Untagged: n})
	}
	if res.Deleted != "" {
		out = append(out, image.DeleteResponse{Deleted: res.Deleted.String()})
	}
	writeJSON(w, http.StatusOK, out)
}

// prune answers POST /images/prune?filters=: dangling content only.
func (s *Server) prune(w http.ResponseWriter, r *http.Request) {
	if raw := r.URL.Query().Get("filters"); raw != "" {
		var f map[string]map[string]bool
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("invalid filters %q: %w", raw, err))
			return
		}
		for key, values := range f {
			switch {
			case key == "dangling" && (values["false"] || values["0"]):
				writeError(w, http.StatusNotImplemented, errors.New("ctrpush prunes dangling content only: it runs no containers, so every image would count as unused (docker image prune --all is not supported)"))
				return
			case key != "dangling":
				writeError(w, http.StatusBadRequest, fmt.Errorf("filter %q is not supported by ctrpush's prune (only dangling=true)", key))
				return
			}
		}
	}
	rep, err := s.cfg.Service.Prune(r.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	out := image.PruneReport{ImagesDeleted: []image.DeleteResponse{}, SpaceReclaimed: uint64(rep.SpaceReclaimed)}
	for _, d := range rep.Images {
		out.ImagesDeleted = append(out.ImagesDeleted, image.DeleteResponse{Deleted: d.String()})
	}
	for _, d := range rep.Deleted {
		out.ImagesDeleted = append(out.ImagesDeleted, image.DeleteResponse{Deleted: d.Digest.String()})
	}
	writeJSON(w, http.StatusOK, out)
}

// history answers GET /images/{name}/history?platform=.
func (s *Server) history(w http.ResponseWriter, r *http.Request, name string) {
	d, opts, ok := s.imageFor(w, r, name)
	if !ok {
		return
	}
	entries, err := s.cfg.Service.History(r.Context(), name, opts...)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	out := make([]image.HistoryResponseItem, 0, len(entries))
	for i, e := range entries {
		item := image.HistoryResponseItem{ID: "<missing>", CreatedBy: e.CreatedBy, Comment: e.Comment, Size: e.Layer.Size, Tags: []string{}}
		if !e.Created.IsZero() {
			item.Created = e.Created.Unix()
		}
		if i == 0 {
			item.ID = d.Image.Target.Digest.String()
			for _, n := range d.Names {
				tags, _ := imageservice.DockerNames(n, d.Image.Target.Digest)
				item.Tags = append(item.Tags, tags...)
			}
		}
		out = append(out, item)
	}
	writeJSON(w, http.StatusOK, out)
}

// imageError words the library's errors about a local image as dockerd
// does; name is the image as the request gave it, platform the one asked
// for ("" for none).
func imageError(name, platform string, err error) error {
	var nf *imageservice.ImageNotFoundError
	var pnf *imageservice.PlatformNotFoundError
	var mn *imageservice.MultipleNamesError
	switch {
	case errors.As(err, &nf):
		return apiErr(errdefs.ErrNotFound, "No such image: %s", familiarTagged(name))
	case errors.As(err, &pnf) && platform != "":
		return apiErr(errdefs.ErrNotFound, "image with reference %s was found but does not provide the specified platform (%s)", name, platform)
	case errors.As(err, &mn):
		return apiErr(errdefs.ErrConflict, "conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", mn.ID.Encoded()[:12])
	}
	return err
}

// familiarTagged is name as dockerd quotes an image it does not have:
// "alpine" → "alpine:latest"; an ID or anything else stays as given.
func familiarTagged(name string) string {
	if _, err := digest.Parse(name); err == nil {
		return name
	}
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return reference.FamiliarString(reference.TagNameOnly(ref))
}

// splitNames reads ?names= (repeated, as the docker CLI sends it; a comma
// list is taken too).
func splitNames(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// apiError is an error with dockerd's wording and the kind (an errdefs
// sentinel) that sets its HTTP status.
type apiError struct {
	msg  string
	kind error
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kind }

func apiErr(kind error, format string, a ...any) error {
	return &apiError{msg: fmt.Sprintf(format, a...), kind: kind}
}
