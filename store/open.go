package store

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// DefaultAddress is the containerd daemon's default socket, where ctr and
// nerdctl look first.
const DefaultAddress = "/run/containerd/containerd.sock"

// DefaultDialTimeout bounds the connection to a containerd daemon.
const DefaultDialTimeout = 5 * time.Second

// DefaultNamespace is the containerd namespace Open uses when none is
// given, as ctr and nerdctl do.
const DefaultNamespace = "default"

// Kind says what a Store runs on.
type Kind string

const (
	// KindEmbedded is the embedded store (OpenEmbedded) in a directory.
	KindEmbedded Kind = "embedded"
	// KindContainerd is a containerd daemon's store, over its socket.
	KindContainerd Kind = "containerd"
)

// Config says which store Open opens and how. Root, Address and
// FallbackRoot choose the store, in this order:
//
//   - Root: the embedded store in that directory (Address is ignored);
//   - Address: the containerd daemon listening on that unix socket;
//   - neither: the daemon at DefaultAddress when one answers there, else
//     the embedded store in FallbackRoot. Without FallbackRoot either,
//     Open chooses nothing and fails.
type Config struct {
	// Root is the embedded store's directory, created if needed.
	Root string
	// Address is a containerd daemon's socket.
	Address string
	// FallbackRoot is the embedded store's directory when neither Root
	// nor Address is given and no daemon answers at DefaultAddress.
	FallbackRoot string
	// Namespace is the containerd namespace (default DefaultNamespace).
	Namespace string
	// Timeout is how long to wait for another process to release the
	// embedded store (default DefaultTimeout).
	Timeout time.Duration
	// DialTimeout bounds the connection to a daemon (default
	// DefaultDialTimeout).
	DialTimeout time.Duration
	// NoDirectReads reads a daemon's blobs over gRPC only. Default: straight
	// from the daemon's content directory when this process can (see
	// DirectReads).
	NoDirectReads bool
	// probe is the socket probed without Root and Address (DefaultAddress
	// when empty; tests point it elsewhere).
	probe string
}

// probeAddress is the default daemon's socket cfg probes.
func (cfg Config) probeAddress() string {
	if cfg.probe != "" {
		return cfg.probe
	}
	return DefaultAddress
}

// Store is an opened store: the containerd interfaces an
// imageservice.Service works on, in one namespace.
type Store struct {
	kind      Kind
	location  string
	namespace string
	content   content.Store
	images    images.Store
	leases    leases.Manager
	embedded  *Embedded
	version   func(context.Context) (string, error)
	close     func() error
	closeOnce sync.Once
	closeErr  error
}

// Open opens the store cfg chooses (see Config). On a daemon, blobs are
// read straight from its content directory when the daemon reports one
// this process can read (same host and user), over gRPC otherwise. What
// ctrpush processes that are gone left (leases, partial ingests) is
// reclaimed. Close releases the store.
//
// Opening an embedded store that another process holds fails with an
// InUseError after cfg.Timeout; a daemon that cannot be reached, with a
// ConnectError; a namespace containerd refuses, at once.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	kind, location, err := chooseStore(cfg, answers)
	if err != nil {
		return nil, err
	}
	ns := cfg.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	if err := identifiers.Validate(ns); err != nil {
		return nil, fmt.Errorf("namespace %q: %w", ns, err) // before the store is held
	}
	log.G(ctx).WithFields(log.Fields{"store": kind, "location": location, "namespace": ns}).Debug("store chosen")
	st := &Store{kind: kind, location: location, namespace: ns}
	if kind == KindEmbedded {
		var eopts []EmbeddedOption
		if cfg.Timeout > 0 {
			eopts = append(eopts, WithTimeout(cfg.Timeout))
		}
		e, err := OpenEmbedded(ctx, location, eopts...)
		if err != nil {
			return nil, err
		}
		st.content, st.images, st.leases, st.embedded, st.close = e.ContentStore(), e.ImageStore(), e.LeaseManager(), e, e.Close
		return st, nil
	}
	timeout := cfg.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	c, err := client.New(location, client.WithDefaultNamespace(ns), client.WithTimeout(timeout))
	if err != nil {
		return nil, &ConnectError{Address: location, Err: err}
	}
	cs := c.ContentStore()
	if !cfg.NoDirectReads {
		if root := contentRoot(ctx, c); root != "" {
			log.G(ctx).WithField("root", root).Debug("reading blobs directly from the daemon's content directory when possible")
			cs = DirectReads(cs, root)
		}
	}
	// Only ctrpush's own leases (owner.Label), in this namespace: the
	// daemon's other leases are its business.
	if n, err := ReclaimLeases(namespaces.WithNamespace(ctx, ns), c.LeasesService()); err != nil {
		log.G(ctx).WithError(err).Warn("could not release the leases of ctrpush processes that are gone")
	} else if n > 0 {
		log.G(ctx).WithField("leases", n).Debug("released the leases of ctrpush processes that are gone")
	}
	// The same for their partial ingests (their refs name them).
	if n, err := ReclaimIngests(namespaces.WithNamespace(ctx, ns), c.ContentStore()); err != nil {
		log.G(ctx).WithError(err).Warn("could not remove the partial ingests of ctrpush processes that are gone")
	} else if n > 0 {
		log.G(ctx).WithField("ingests", n).Debug("removed the partial ingests of ctrpush processes that are gone")
	}
	st.content, st.images, st.leases, st.close = cs, c.ImageService(), c.LeasesService(), c.Close
	st.version = func(ctx context.Context) (string, error) { return daemonVersion(ctx, c) }
	return st, nil
}

func daemonVersion(ctx context.Context, c *client.Client) (string, error) {
	v, err := c.Version(ctx)
	if err != nil {
		return "", err
	}
	if v.Revision != "" {
		return v.Version + " (revision " + v.Revision + ")", nil
	}
	return v.Version, nil
}

// Choose says which store Open would open for cfg, without opening it.
func Choose(cfg Config) (Kind, string, error) { return chooseStore(cfg, answers) }

// DaemonVersionAt asks the containerd daemon at address for its version
// (see Store.DaemonVersion) without opening its store: no lease or
// ingest is touched. timeout bounds the dial (DefaultDialTimeout if 0).
func DaemonVersionAt(ctx context.Context, address string, timeout time.Duration) (string, error) {
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	if _, err := os.Stat(address); err != nil {
		return "", &ConnectError{Address: address, Err: err}
	}
	c, err := client.New(address, client.WithTimeout(timeout))
	if err != nil {
		return "", &ConnectError{Address: address, Err: err}
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := daemonVersion(ctx, c)
	if err != nil {
		return "", &ConnectError{Address: address, Err: err}
	}
	return v, nil
}

// chooseStore applies Config's order; answers probes a socket.
func chooseStore(cfg Config, answers func(address string) bool) (Kind, string, error) {
	switch {
	case cfg.Root != "":
		return KindEmbedded, cfg.Root, nil
	case cfg.Address != "":
		return KindContainerd, cfg.Address, nil
	case cfg.FallbackRoot == "":
		return "", "", fmt.Errorf("open store: no root directory or daemon address given: %w", errdefs.ErrInvalidArgument)
	case answers(cfg.probeAddress()):
		return KindContainerd, cfg.probeAddress(), nil
	}
	return KindEmbedded, cfg.FallbackRoot, nil
}

// answers reports whether a unix socket accepts connections.
func answers(address string) bool {
	if _, err := os.Stat(address); err != nil {
		return false
	}
	c, err := net.DialTimeout("unix", address, 500*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// contentRoot asks the daemon where its content plugin keeps blobs, if
// this process can see that directory.
func contentRoot(ctx context.Context, c *client.Client) string {
	resp, err := c.IntrospectionService().Plugins(ctx, "type==io.containerd.content.v1,id==content")
	if err != nil {
		return ""
	}
	for _, p := range resp.Plugins {
		if root := p.Exports["root"]; root != "" {
			if _, err := os.Stat(root); err == nil {
				return root
			}
		}
	}
	return ""
}

// Kind says whether the store is embedded or a daemon's.
func (s *Store) Kind() Kind { return s.kind }

// Location is the embedded store's directory or the daemon's socket.
func (s *Store) Location() string { return s.location }

// Namespace is the containerd namespace to work in
// (imageservice.WithNamespace).
func (s *Store) Namespace() string { return s.namespace }

// ContentStore is the store's content (on a daemon, read directly from
// its files where this process can).
func (s *Store) ContentStore() content.Store { return s.content }

// ImageStore is the store's image records.
func (s *Store) ImageStore() images.Store { return s.images }

// LeaseManager is the store's leases.
func (s *Store) LeaseManager() leases.Manager { return s.leases }

// Embedded is the embedded store (for Batch, BlobProvider and
// GarbageCollect), nil on a daemon. Close closes it.
func (s *Store) Embedded() *Embedded { return s.embedded }

// DaemonVersion is the containerd daemon's version and revision, as it
// reports them; "" on the embedded store (it is the containerd library
// ctrpush is built with).
func (s *Store) DaemonVersion(ctx context.Context) (string, error) {
	if s.version == nil {
		return "", nil
	}
	return s.version(ctx)
}

// Close releases the store: the embedded store for other processes, or
// the connection to the daemon. Calls after the first return its result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}
