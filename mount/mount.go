package mount

import (
	"cmp"
	"context"
	"encoding/json"
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
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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

// Mountable is a blob missing locally that a push can mount.
type Mountable struct {
	Descriptor ocispec.Descriptor
	// Sources are the distribution-source labels known for it (its own
	// descriptor's, its manifest's and the image's).
	Sources map[string]string
}

// MountableBlobs walks the image at target in cs and returns the blobs
// (configs and layers) missing from cs that some repository of registry
// ("host[:port]") is known to hold. Manifests and indexes are never
// mountable: a missing one is simply not walked.
func MountableBlobs(ctx context.Context, cs content.Store, target ocispec.Descriptor, registry string) (map[digest.Digest]Mountable, error) {
	out := map[digest.Digest]Mountable{}
	key := LabelKey(registry)
	var walk func(desc ocispec.Descriptor, inherited map[string]string, depth int) error
	walk = func(desc ocispec.Descriptor, inherited map[string]string, depth int) error {
		if depth > 4 {
			return nil
		}
		info, err := cs.Info(ctx, desc.Digest)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		}
		sources := MergeSources(inherited, desc.Annotations, info.Labels)
		b, err := content.ReadBlob(ctx, cs, desc)
		if err != nil {
			return fmt.Errorf("read %s: %w", desc.Digest, err)
		}
		switch {
		case images.IsIndexType(desc.MediaType):
			var idx ocispec.Index
			if err := json.Unmarshal(b, &idx); err != nil {
				return fmt.Errorf("decode index %s: %w", desc.Digest, err)
			}
			for _, m := range idx.Manifests {
				if err := walk(m, sources, depth+1); err != nil {
					return err
				}
			}
		case images.IsManifestType(desc.MediaType):
			var m ocispec.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				return fmt.Errorf("decode manifest %s: %w", desc.Digest, err)
			}
			for _, blob := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
				if _, err := cs.Info(ctx, blob.Digest); err == nil || !errdefs.IsNotFound(err) {
					continue // present (or an error the push itself will report)
				}
				bs := MergeSources(sources, blob.Annotations)
				if Repos(bs[key]) == nil {
					continue
				}
				out[blob.Digest] = Mountable{Descriptor: blob, Sources: bs}
			}
		}
		return nil
	}
	if err := walk(target, nil, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// Store is a content store that reports mountable blobs as present (size
// and source labels from their descriptor) so a push can proceed and mount
// them. Reading one fails with a NotMountedError.
type Store struct {
	content.Store
	mountable map[digest.Digest]Mountable
	registry  string
}

// NewStore wraps cs with the mountable blobs of registry.
func NewStore(cs content.Store, mountable map[digest.Digest]Mountable, registry string) *Store {
	return &Store{Store: cs, mountable: mountable, registry: registry}
}

// Mountable returns the mountable blob d, if it is one.
func (s *Store) Mountable(d digest.Digest) (Mountable, bool) {
	m, ok := s.mountable[d]
	return m, ok
}

// Info reports mountable blobs as present.
func (s *Store) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	info, err := s.Store.Info(ctx, d)
	if err != nil && errdefs.IsNotFound(err) {
		if m, ok := s.mountable[d]; ok {
			return content.Info{Digest: d, Size: m.Descriptor.Size, Labels: m.Sources}, nil
		}
	}
	return info, err
}

// ReaderAt fails clearly for a mountable blob: the push needed its bytes
// because no mount worked.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := s.Store.ReaderAt(ctx, desc)
	if err != nil && errdefs.IsNotFound(err) {
		if m, ok := s.mountable[desc.Digest]; ok {
			return nil, &NotMountedError{Digest: desc.Digest, Registry: s.registry, Candidates: Repos(m.Sources[LabelKey(s.registry)])}
		}
	}
	return ra, err
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
// label of root and of every descriptor below it that is present in cs,
// so a later push to another repository of registry mounts instead of
// uploading. A value over containerd's label size limit is skipped with a
// debug log. It returns how many labels it wrote.
func WriteBack(ctx context.Context, cs content.Store, root ocispec.Descriptor, registry, path string) (int, error) {
	return WriteBackConcurrently(ctx, cs, root, registry, path, 1)
}

// WriteBackConcurrently is WriteBack with up to n label updates in flight:
// on a containerd daemon each update is a round trip and a metadata
// commit of its own. Use 1 when cs runs every update in one transaction
// (a bolt transaction cannot be shared between goroutines).
func WriteBackConcurrently(ctx context.Context, cs content.Store, root ocispec.Descriptor, registry, path string, n int) (int, error) {
	key := LabelKey(registry)
	var updates []content.Info
	seen := map[digest.Digest]bool{}
	var walk func(desc ocispec.Descriptor, depth int) error
	walk = func(desc ocispec.Descriptor, depth int) error {
		if seen[desc.Digest] || depth > 5 {
			return nil
		}
		seen[desc.Digest] = true
		info, err := cs.Info(ctx, desc.Digest)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		}
		value := AppendRepo(info.Labels[key], path)
		if value != info.Labels[key] {
			if !Fits(key, value) {
				log.G(ctx).WithField("digest", desc.Digest).Debugf("distribution-source label %s too long; not adding %s", key, path)
			} else {
				updates = append(updates, content.Info{Digest: desc.Digest, Labels: map[string]string{key: value}})
			}
		}
		if !images.IsManifestType(desc.MediaType) && !images.IsIndexType(desc.MediaType) {
			return nil
		}
		children, err := images.Children(ctx, cs, desc)
		if err != nil {
			return fmt.Errorf("children of %s: %w", desc.Digest, err)
		}
		for _, c := range children {
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, 0); err != nil {
		return 0, err
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
