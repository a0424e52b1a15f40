// Package imageservice pushes images from a containerd content store to OCI
// registries, fills that store by pulling and importing archives, and does
// the local image operations docker does on it: save, tag, delete, prune,
// list, inspect and history.
//
// A Service works over three containerd interfaces — content.Store,
// images.Store and leases.Manager — and a namespace, so the embedded store
// (OpenEmbedded) and a containerd daemon's client plug in the same way.
// OpenStore opens either (or the daemon at DefaultAddress when one answers,
// else the embedded store) with a Service over it, as the ctrpush CLI does.
// Every operation holds a lease for the content it touches and releases it
// on every path. Errors wrap containerd's errdefs sentinels; progress is
// reported as progress.Events for the caller to render.
package imageservice

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/owner"
)

// DefaultNamespace is the containerd namespace used when none is given, as
// ctr and nerdctl do.
const DefaultNamespace = "default"

// Service pushes and imports images of one containerd namespace.
type Service struct {
	content   content.Store
	images    images.Store
	leases    leases.Manager
	namespace string
	host      ocispec.Platform
	batch     func(context.Context, func(context.Context) error) error
	batched   bool // batch is one transaction: its updates run one at a time
	blobs     content.Provider
}

// Option configures a Service.
type Option func(*Service) error

// WithNamespace sets the containerd namespace (default DefaultNamespace).
func WithNamespace(ns string) Option {
	return func(s *Service) error {
		if err := identifiers.Validate(ns); err != nil {
			return fmt.Errorf("namespace %q: %w", ns, err)
		}
		s.namespace = ns
		return nil
	}
}

// WithHostPlatform sets the platform treated as this host's when no
// platform is requested (default platforms.DefaultSpec()).
func WithHostPlatform(p ocispec.Platform) Option {
	return func(s *Service) error {
		s.host = platforms.Normalize(p)
		return nil
	}
}

// WithBatch lets the service group many metadata updates into one
// transaction (Embedded.Batch); default: each update on its own.
func WithBatch(batch func(ctx context.Context, fn func(context.Context) error) error) Option {
	return func(s *Service) error {
		s.batch, s.batched = batch, true
		return nil
	}
}

// WithBlobProvider lets a push read the bytes of blobs it has found in the
// content store straight from p (the embedded store's blob files,
// Embedded.BlobProvider), with no metadata transaction per blob, so other
// processes can use the store while it uploads (default: every read goes
// through the content store).
func WithBlobProvider(p content.Provider) Option {
	return func(s *Service) error {
		s.blobs = p
		return nil
	}
}

// New returns a Service over a content store, an image store and a lease
// manager.
func New(cs content.Store, is images.Store, lm leases.Manager, opts ...Option) (*Service, error) {
	if cs == nil || is == nil || lm == nil {
		return nil, fmt.Errorf("imageservice: content store, image store and lease manager are required: %w", errdefs.ErrInvalidArgument)
	}
	s := &Service{content: cs, images: is, leases: lm, namespace: DefaultNamespace, host: platforms.DefaultSpec(),
		batch: func(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }}
	for _, opt := range opts {
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// withNamespace puts the service's namespace into ctx unless ctx has one.
func (s *Service) withNamespace(ctx context.Context) context.Context {
	if _, ok := namespaces.Namespace(ctx); ok {
		return ctx
	}
	return namespaces.WithNamespace(ctx, s.namespace)
}

// withLease runs fn under a new lease that is deleted afterwards with a
// context that is not cancelled, so cancellation still releases it.
func (s *Service) withLease(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	opts := []leases.Opt{leases.WithRandomID(), leases.WithExpiration(24 * time.Hour), leases.WithLabel("ctrpush", "operation")}
	if owner.This != "" {
		// Who holds it: released by the next ctrpush to open the store
		// once this process is gone (store.ReclaimLeases).
		opts = append(opts, leases.WithLabel(owner.Label, owner.This))
	}
	l, err := s.leases.Create(ctx, opts...)
	if err != nil {
		return fmt.Errorf("create lease: %w", err)
	}
	defer func() {
		rctx := context.WithoutCancel(ctx)
		if derr := s.leases.Delete(rctx, l, leases.SynchronousDelete); derr != nil && err == nil {
			err = fmt.Errorf("release lease %s: %w", l.ID, derr)
		}
	}()
	return fn(leases.WithLease(ctx, l.ID))
}
