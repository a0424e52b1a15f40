package imageservice

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
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
