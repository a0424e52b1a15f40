package mount

import (
	"cmp"
	"context"
	"fmt"
	"golang.org/x/sync/errgroup"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// CanBeMounted reports whether a blob of mediaType can be mounted into
// target from source: never manifests or indexes (they are PUT, not
// mounted), and only within one registry (same host and port).
func CanBeMounted(mediaType string, target, source reference.Named) bool {
	if images.IsManifestType(mediaType) || images.IsIndexType(mediaType) {
		return false
	}
	return reference.Domain(target) == reference.Domain(source) && target.Name() != source.Name()
}

// Candidates returns up to MaxCandidates repositories of registry that the
// labels say hold a blob, to mount it into targetPath: the longest common
// path prefix with the target first, then by name; never the target
// itself.
func Candidates(sources map[string]string, registry, targetPath string) []string {
	repos := slices.DeleteFunc(Repos(sources[LabelKey(registry)]), func(r string) bool { return r == targetPath })
	tc := strings.Split(targetPath, "/")
	common := func(r string) int {
		n := 0
		for i, c := range strings.Split(r, "/") {
			if i >= len(tc) || tc[i] != c {
				break
			}
			n++
		}
		return n
	}
	slices.SortStableFunc(repos, func(a, b string) int {
		if c := cmp.Compare(common(b), common(a)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	if len(repos) > MaxCandidates {
		repos = repos[:MaxCandidates]
	}
	return repos
}

// Listed reports whether the labels say repository path of registry holds
// the blob.
func Listed(sources map[string]string, registry, path string) bool {
	return slices.Contains(Repos(sources[LabelKey(registry)]), path)
}

// Known reports whether the labels name any repository of registry as
// holding the blob.
func Known(sources map[string]string, registry string) bool {
	return len(Repos(sources[LabelKey(registry)])) > 0
}

// NotMountedError: a blob missing locally could not be mounted from any
// repository known to hold it. It wraps errdefs.ErrNotFound.
type NotMountedError struct {
	Digest     digest.Digest
	Registry   string
	Candidates []string
}

func (e *NotMountedError) Error() string {
	return fmt.Sprintf("blob %s is not in the local store and could not be mounted from %s (tried %s); pull the image first so the blob is local",
		e.Digest, e.Registry, strings.Join(e.Candidates, ", "))
}

// Unwrap lets errdefs.IsNotFound hold.
func (e *NotMountedError) Unwrap() error { return errdefs.ErrNotFound }

// WriteBack appends repository path of registry to the distribution-source
// label of each blob in digests that is present in cs (the caller lists
// what it pushed), so a later push to another repository of registry
// mounts instead of uploading. Up to n label updates are in flight: on a
// containerd daemon each is a round trip and a metadata commit of its own;
// use 1 when cs runs every update in one transaction (a bolt transaction
// cannot be shared between goroutines). A value over containerd's label
// size limit is skipped with a debug log. It returns how many labels it
// wrote.
func WriteBack(ctx context.Context, cs content.Store, digests []digest.Digest, registry, path string, n int) (int, error) {
	key := LabelKey(registry)
	var updates []content.Info
	seen := map[digest.Digest]bool{}
	for _, d := range digests {
		if seen[d] {
			continue
		}
		seen[d] = true
		info, err := cs.Info(ctx, d)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return 0, err
		}
		value := AppendRepo(info.Labels[key], path)
		if value == info.Labels[key] {
			continue
		}
		if !Fits(key, value) {
			log.G(ctx).WithField("digest", d).Debugf("distribution-source label %s too long; not adding %s", key, path)
			continue
		}
		updates = append(updates, content.Info{Digest: d, Labels: map[string]string{key: value}})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(n, 1))
	for _, u := range updates {
		g.Go(func() error {
			if _, err := cs.Update(gctx, u, "labels."+key); err != nil {
				return fmt.Errorf("label %s: %w", u.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return len(updates), nil
}

// DropSource removes repository path of registry from blob d's own label,
// when the registry said that repository does not have it. A blob not in
// cs, or not labelled with path, is left alone.
func DropSource(ctx context.Context, cs content.Store, d digest.Digest, registry, path string) error {
	key := LabelKey(registry)
	info, err := cs.Info(ctx, d)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	value := RemoveRepo(info.Labels[key], path)
	if value == info.Labels[key] {
		return nil
	}
	// An empty value removes the label.
	_, err = cs.Update(ctx, content.Info{Digest: d, Labels: map[string]string{key: value}}, "labels."+key)
	return err
}
