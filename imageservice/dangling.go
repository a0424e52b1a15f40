package imageservice

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// danglingPrefix starts the name of an image that has none: dockerd's
// containerd image store names such an image "moby-dangling@<ID>", so a
// store shared with dockerd agrees on it.
const danglingPrefix = "moby-dangling@"

// DanglingName is the record name of an image without a name (an archive
// saved by ID, docker import without a repository), whose ID is d.
func DanglingName(d digest.Digest) string { return danglingPrefix + d.String() }

// IsDangling says whether name is DanglingName of an image: a record that
// gives the image no name.
func IsDangling(name string) bool { return strings.HasPrefix(name, danglingPrefix) }

// dropDangling removes the dangling record of the image d once a name
// points at it (as dockerd does); a record that is not there is fine.
func (s *Service) dropDangling(ctx context.Context, d digest.Digest) error {
	if err := s.images.Delete(ctx, DanglingName(d)); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove the dangling record of %s: %w", d, err)
	}
	return nil
}

// DockerNames turns a store image name into Docker's RepoTags and
// RepoDigests entries (familiar names, as docker images shows them:
// "alpine:3.20", "registry:5000/team/app@sha256:…"); a dangling name has
// none (docker's <none>:<none>).
func DockerNames(name string, target digest.Digest) (tags, digests []string) {
	if IsDangling(name) {
		return nil, nil
	}
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, nil
	}
	if t, ok := ref.(reference.Tagged); ok {
		tags = append(tags, reference.FamiliarString(reference.TrimNamed(ref))+":"+t.Tag())
	}
	if d, err := reference.WithDigest(reference.TrimNamed(ref), target); err == nil {
		digests = append(digests, reference.FamiliarString(d))
	}
	return tags, digests
}

// MatchesReference says whether a familiar "repo:tag" of tags (or its
// repository) matches one of patterns (path.Match globs), as docker's
// reference filter does; no patterns match everything.
func MatchesReference(patterns, tags []string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		for _, t := range tags {
			repo := t[:strings.LastIndex(t, ":")]
			if ok, _ := path.Match(p, t); ok {
				return true
			}
			if ok, _ := path.Match(p, repo); ok {
				return true
			}
		}
	}
	return false
}

// ImageFilter is docker's filter of an image list: the reference globs
// (any matches; none: every name) and whether the image must have no name
// (nil: either). Add reads one KEY=VALUE of `docker images --filter` or of
// the Engine API's filters; Match applies them to one store image.
type ImageFilter struct {
	References []string
	Dangling   *bool
}

// Add adds the filter key=value, refusing what docker's image filters
// do not mean (another key, a bad glob, dangling neither true nor false,
// or both).
func (f *ImageFilter) Add(key, value string) error {
	switch key {
	case "reference":
		if _, err := path.Match(value, ""); err != nil {
			return fmt.Errorf("reference pattern %q: %w", value, err)
		}
		f.References = append(f.References, value)
	case "dangling":
		var want bool
		switch strings.ToLower(value) {
		case "true", "1":
			want = true
		case "false", "0":
		default:
			return fmt.Errorf("dangling=%s: give true or false", value)
		}
		if f.Dangling != nil && *f.Dangling != want {
			return errors.New("dangling=true and dangling=false together keep nothing: give one")
		}
		f.Dangling = &want
	default:
		return fmt.Errorf("%q: ctrpush filters images by reference and dangling only", key)
	}
	return nil
}

// Match says whether the store image name (with target) passes.
func (f ImageFilter) Match(name string, target digest.Digest) bool {
	if f.Dangling != nil && *f.Dangling != IsDangling(name) {
		return false
	}
	tags, _ := DockerNames(name, target)
	return MatchesReference(f.References, tags)
}
