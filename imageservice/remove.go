package imageservice

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DeleteOptions says how Delete treats an image with several names and
// its content.
type DeleteOptions struct {
	// Force removes every name of an image given by ID, even when it has
	// several.
	Force bool
	// NoPrune leaves the content of a deleted image in the store until
	// the next garbage collection (Prune) instead of collecting it now.
	NoPrune bool
}

// DeleteResult says what Delete did, in the order it did it.
type DeleteResult struct {
	// Untagged are the names removed.
	Untagged []string
	// Deleted is the image ID (the target digest) when no name is left
	// pointing at it: the image is gone. Empty when another name keeps it.
	Deleted digest.Digest
}

// MultipleNamesError says an image given by ID has several names and was
// not removed without DeleteOptions.Force. It wraps errdefs.ErrConflict.
type MultipleNamesError struct {
	ID    digest.Digest
	Names []string
}

func (e *MultipleNamesError) Error() string {
	return fmt.Sprintf("image %s has several names (%s): remove them by name, or force the removal of all", e.ID, strings.Join(e.Names, ", "))
}

// Unwrap lets errdefs.IsConflict hold.
func (e *MultipleNamesError) Unwrap() error { return errdefs.ErrConflict }

// Delete removes an image as docker rmi does. A name removes that name;
// the image itself (its ID) is deleted with its last name. An ID (full or
// a unique prefix) removes the image's only name, or, with Force, all of
// them; an ID with several names without Force is a MultipleNamesError.
// Content that nothing else references is collected at once unless
// NoPrune.
func (s *Service) Delete(ctx context.Context, name string, opts DeleteOptions) (DeleteResult, error) {
	ctx = s.withNamespace(ctx)
	img, byID, err := s.lookup(ctx, name)
	if err != nil {
		return DeleteResult{}, err
	}
	names, err := s.namesOf(ctx, img.Target.Digest)
	if err != nil {
		return DeleteResult{}, err
	}
	remove := []string{img.Name}
	if byID {
		if len(names) > 1 && !opts.Force {
			return DeleteResult{}, &MultipleNamesError{ID: img.Target.Digest, Names: names}
		}
		remove = names
	}
	var res DeleteResult
	last := len(remove) == len(names)
	for i, n := range remove {
		var do []images.DeleteOpt
		if last && i == len(remove)-1 && !opts.NoPrune {
			do = append(do, images.SynchronousDelete())
		}
		if err := s.images.Delete(ctx, n, do...); err != nil {
			if errdefs.IsNotFound(err) {
				continue // removed meanwhile by someone else
			}
			return res, fmt.Errorf("remove image %s: %w", n, err)
		}
		res.Untagged = append(res.Untagged, n)
	}
	if last {
		res.Deleted = img.Target.Digest
	}
	return res, nil
}

// PruneReport is what Prune removed.
type PruneReport struct {
	// Images are the IDs of the dangling images removed (DanglingName).
	Images []digest.Digest
	// Deleted are the blobs removed (digest, media type unknown, size).
	Deleted []ocispec.Descriptor
	// SpaceReclaimed is the sum of their sizes.
	SpaceReclaimed int64
}

// Prune removes the dangling images (those without a name: DanglingName)
// and the dangling content of the store: blobs no image, lease or other
// content references (left by a tag moved to another image, a Delete with
// NoPrune, an interrupted pull). Named images are never removed.
func (s *Service) Prune(ctx context.Context) (PruneReport, error) {
	ctx = s.withNamespace(ctx)
	before := map[digest.Digest]int64{}
	if err := s.content.Walk(ctx, func(i content.Info) error { before[i.Digest] = i.Size; return nil }); err != nil {
		return PruneReport{}, fmt.Errorf("list content: %w", err)
	}
	all, err := s.images.List(ctx)
	if err != nil {
		return PruneReport{}, fmt.Errorf("list images: %w", err)
	}
	var r PruneReport
	for _, img := range all {
		if !IsDangling(img.Name) {
			continue
		}
		if err := s.images.Delete(ctx, img.Name); err != nil && !errdefs.IsNotFound(err) {
			return r, fmt.Errorf("remove dangling image %s: %w", img.Target.Digest, err)
		}
		r.Images = append(r.Images, img.Target.Digest)
	}
	// Releasing a lease synchronously collects garbage, in the embedded
	// store as in a daemon.
	if err := s.withLease(ctx, func(context.Context) error { return nil }); err != nil {
		return PruneReport{}, fmt.Errorf("collect garbage: %w", err)
	}
	after := map[digest.Digest]bool{}
	if err := s.content.Walk(ctx, func(i content.Info) error { after[i.Digest] = true; return nil }); err != nil {
		return PruneReport{}, fmt.Errorf("list content: %w", err)
	}
	for d, size := range before {
		if !after[d] {
			r.Deleted = append(r.Deleted, ocispec.Descriptor{Digest: d, Size: size})
			r.SpaceReclaimed += size
		}
	}
	return r, nil
}
