package imageservice

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// minIDPrefix is the shortest image ID prefix looked up (docker's short IDs
// are 12 hex digits; shorter prefixes are too easily ambiguous).
const minIDPrefix = 4

// Image finds a local image by name, as docker does: a reference
// ("alpine" means docker.io/library/alpine:latest), a full ID
// ("sha256:<hex>": the digest of the image's index or manifest) or a
// unique prefix of the ID's hex. A name that matches nothing is an
// ImageNotFoundError; an ID prefix of several images is an error wrapping
// errdefs.ErrConflict.
func (s *Service) Image(ctx context.Context, name string) (images.Image, error) {
	img, _, err := s.lookup(s.withNamespace(ctx), name)
	return img, err
}

// lookup is Image, also saying whether name was an ID.
func (s *Service) lookup(ctx context.Context, name string) (images.Image, bool, error) {
	if d, err := digest.Parse(name); err == nil {
		img, err := s.imageByID(ctx, name, d.Encoded(), true)
		return img, true, err
	}
	ref, refErr := reference.ParseNormalizedNamed(name)
	if refErr == nil {
		img, err := s.images.Get(ctx, reference.TagNameOnly(ref).String())
		if err == nil || !errdefs.IsNotFound(err) {
			return img, false, err
		}
	}
	if isHex(name) && len(name) >= minIDPrefix {
		img, err := s.imageByID(ctx, name, name, false)
		return img, true, err
	}
	if refErr != nil {
		return images.Image{}, false, &ReferenceError{What: "image", Value: name, Err: refErr}
	}
	return images.Image{}, false, &ImageNotFoundError{Name: reference.TagNameOnly(ref).String(), Namespace: namespaceOf(ctx)}
}

// imageByID finds the image whose target digest's hex is (or, unless
// exact, starts with) hex. Several names of one image are one match.
func (s *Service) imageByID(ctx context.Context, name, hex string, exact bool) (images.Image, error) {
	all, err := s.images.List(ctx)
	if err != nil {
		return images.Image{}, fmt.Errorf("list images: %w", err)
	}
	var found []images.Image
	ids := map[digest.Digest]bool{}
	for _, img := range all {
		enc := img.Target.Digest.Encoded()
		if enc == hex || !exact && strings.HasPrefix(enc, hex) {
			found = append(found, img)
			ids[img.Target.Digest] = true
		}
	}
	switch {
	case len(found) == 0:
		return images.Image{}, &ImageNotFoundError{Name: name, Namespace: namespaceOf(ctx)}
	case len(ids) > 1:
		return images.Image{}, fmt.Errorf("image ID prefix %s matches %d images; give more of it: %w", name, len(ids), errdefs.ErrConflict)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	return found[0], nil
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// Tag gives the image source (see Image) the name target, as docker tag
// does: a target without tag gets "latest", an existing target is moved
// to the new image. It returns the normalized target name.
func (s *Service) Tag(ctx context.Context, source, target string) (string, error) {
	ctx = s.withNamespace(ctx)
	ref, err := reference.ParseNormalizedNamed(target)
	if err != nil {
		return "", &ReferenceError{What: "target", Value: target, Err: err}
	}
	if _, ok := ref.(reference.Digested); ok {
		return "", &ReferenceError{What: "target", Value: target, Err: errors.New("a target names a tag, not a digest")}
	}
	img, err := s.Image(ctx, source)
	if err != nil {
		return "", err
	}
	name := reference.TagNameOnly(ref).String()
	if name == img.Name {
		return name, nil
	}
	next := images.Image{Name: name, Target: img.Target, Labels: img.Labels}
	if _, err := s.images.Create(ctx, next); err != nil {
		if !errdefs.IsAlreadyExists(err) {
			return "", fmt.Errorf("tag %s as %s: %w", img.Name, name, err)
		}
		if _, err := s.images.Update(ctx, next, "target", "labels"); err != nil {
			return "", fmt.Errorf("tag %s as %s: %w", img.Name, name, err)
		}
	}
	// A dangling image that gets a name is no longer dangling.
	if err := s.dropDangling(ctx, img.Target.Digest); err != nil {
		return "", err
	}
	return name, nil
}

// Remove deletes the image name (a reference, or an ID naming one image
// with a single name) and then the content nothing else holds, as docker
// rmi does; it is Delete without options, returning the name removed. An
// ID of an image with several names is a MultipleNamesError (wrapping
// errdefs.ErrConflict) that lists them.
func (s *Service) Remove(ctx context.Context, name string) (string, error) {
	res, err := s.Delete(ctx, name, DeleteOptions{})
	if err != nil {
		return "", err
	}
	if len(res.Untagged) == 0 {
		return "", &ImageNotFoundError{Name: name, Namespace: namespaceOf(s.withNamespace(ctx))}
	}
	return res.Untagged[0], nil
}

// putImage points the image record rec.Name at rec.Target, creating the
// record (with rec's other fields) when there is none.
func (s *Service) putImage(ctx context.Context, rec images.Image) error {
	if _, err := s.images.Update(ctx, rec, "target"); err != nil {
		if !errdefs.IsNotFound(err) {
			return fmt.Errorf("update image %s: %w", rec.Name, err)
		}
		if _, err := s.images.Create(ctx, rec); err != nil {
			return fmt.Errorf("create image %s: %w", rec.Name, err)
		}
	}
	return nil
}
