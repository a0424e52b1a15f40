package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/containerd/platforms"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"

	"github.com/ctrpush/ctrpush/imageservice"
)

// list answers GET /images/json: one summary per image ID (the digest of
// the image's index or manifest, as Docker's containerd store reports it)
// with every name it has.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	filter, err := imageFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	imgs, err := s.cfg.Service.Images(r.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	byID := map[digest.Digest]*image.Summary{}
	var order []digest.Digest
	for _, img := range imgs {
		tags, digests := imageservice.DockerNames(img.Name, img.Target.Digest)
		if !filter.Match(img.Name, img.Target.Digest) {
			continue
		}
		sum, ok := byID[img.Target.Digest]
		if !ok {
			sum = &image.Summary{
				ID: img.Target.Digest.String(), Containers: -1, SharedSize: -1, Size: img.Size,
				Labels: map[string]string{}, RepoTags: []string{}, RepoDigests: []string{},
			}
			byID[img.Target.Digest] = sum
			order = append(order, img.Target.Digest)
		}
		sum.RepoTags = append(sum.RepoTags, tags...)
		sum.RepoDigests = append(sum.RepoDigests, digests...)
		if c := img.Created.Unix(); c > sum.Created {
			sum.Created = c
		}
	}
	out := make([]image.Summary, 0, len(order))
	for _, d := range order {
		out = append(out, *byID[d])
	}
	writeJSON(w, http.StatusOK, out)
}

// inspect answers GET /images/{name}/json for the host's platform, or
// the one ?platform= names.
func (s *Server) inspect(w http.ResponseWriter, r *http.Request, name string) {
	d, _, ok := s.imageFor(w, r, name)
	if !ok {
		return
	}
	resp := image.InspectResponse{
		ID: d.Image.Target.Digest.String(), RepoTags: []string{}, RepoDigests: []string{},
		Architecture: d.Platform.Architecture, Os: d.Platform.OS, Variant: d.Platform.Variant, OsVersion: d.Platform.OSVersion,
		Size:     d.Size,
		RootFS:   image.RootFS{Type: "layers"},
		Metadata: image.Metadata{},
	}
	desc := d.Image.Target
	resp.Descriptor = &desc
	seen := map[string]bool{}
	for _, n := range d.Names {
		tags, digests := imageservice.DockerNames(n, d.Image.Target.Digest)
		resp.RepoTags = append(resp.RepoTags, tags...)
		for _, dg := range digests {
			if !seen[dg] {
				seen[dg] = true
				resp.RepoDigests = append(resp.RepoDigests, dg)
			}
		}
	}
	sort.Strings(resp.RepoDigests)
	if d.Manifest.Digest != "" {
		c := d.Config
		if c.Created != nil {
			resp.Created = c.Created.UTC().Format(time.RFC3339Nano)
		}
		resp.Author = c.Author
		resp.Config = &dockerspec.DockerOCIImageConfig{ImageConfig: c.Config}
		for _, l := range c.RootFS.DiffIDs {
			resp.RootFS.Layers = append(resp.RootFS.Layers, l.String())
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// imageFilters reads the images/json filters: reference ({"reference":
// {"PATTERN":true}}, docker images REPO[:TAG]) and dangling (docker images
// -f dangling=true lists only the images without a name, =false only
// those with one). Other filters are refused rather than ignored.
func imageFilters(raw string) (imageservice.ImageFilter, error) {
	var out imageservice.ImageFilter
	if raw == "" {
		return out, nil
	}
	var f map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		return out, fmt.Errorf("invalid filters %q: %w", raw, err)
	}
	for key, values := range f {
		for v := range values {
			if err := out.Add(key, v); err != nil {
				return out, fmt.Errorf("invalid filter: %w", err)
			}
		}
	}
	return out, nil
}

// imageFor looks up image name for the request's ?platform= (the host's
// when absent), writing docker's error when it cannot; the image options
// are those the platform asks for.
func (s *Server) imageFor(w http.ResponseWriter, r *http.Request, name string) (imageservice.ImageDetails, []imageservice.ImageOption, bool) {
	p, err := platformParam(r.URL.Query().Get("platform"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return imageservice.ImageDetails{}, nil, false
	}
	var opts []imageservice.ImageOption
	if p != "" {
		opts = []imageservice.ImageOption{imageservice.ForPlatform(platforms.MustParse(p))}
	}
	d, err := s.cfg.Service.Inspect(r.Context(), name, opts...)
	if err != nil {
		writeError(w, statusOf(err), imageError(name, p, err))
		return imageservice.ImageDetails{}, nil, false
	}
	return d, opts, true
}
