package imageservice

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// DefaultAddress is the containerd daemon's default socket, where ctr and
// nerdctl look first.
const DefaultAddress = "/run/containerd/containerd.sock"

// DefaultDialTimeout bounds the connection to a containerd daemon.
const DefaultDialTimeout = 5 * time.Second

// probeAddress is the socket OpenStore probes without Root and Address
// (DefaultAddress; tests point it elsewhere).
var probeAddress = DefaultAddress

// StoreKind says what a Store runs on.
type StoreKind string

const (
	// StoreEmbedded is the embedded store (OpenEmbedded) in a directory.
	StoreEmbedded StoreKind = "embedded"
	// StoreContainerd is a containerd daemon's store, over its socket.
	StoreContainerd StoreKind = "containerd"
)

// StoreConfig says which store OpenStore opens and how. Root, Address and
// FallbackRoot choose the store, in this order:
//
//   - Root: the embedded store in that directory (Address is ignored);
//   - Address: the containerd daemon listening on that unix socket;
//   - neither: the daemon at DefaultAddress when one answers there, else
//     the embedded store in FallbackRoot. Without FallbackRoot either,
//     OpenStore chooses nothing and fails.
type StoreConfig struct {
	// Root is the embedded store's directory, created if needed.
	Root string
	// Address is a containerd daemon's socket.
	Address string
	// FallbackRoot is the embedded store's directory when neither Root
	// nor Address is given and no daemon answers at DefaultAddress.
	FallbackRoot string
	// Namespace is the containerd namespace (default DefaultNamespace).
	Namespace string
	// StoreTimeout is how long to wait for another process to release
	// the embedded store (default DefaultStoreTimeout).
	StoreTimeout time.Duration
	// DialTimeout bounds the connection to a daemon (default
	// DefaultDialTimeout).
	DialTimeout time.Duration
	// NoDirectReads reads a daemon's blobs over gRPC only. Default: straight
	// from the daemon's content directory when this process can (see
	// DirectReads).
	NoDirectReads bool
	// Options are more options for the Service (WithHostPlatform);
	// OpenStore adds WithNamespace(Namespace) after them, and WithBatch on
	// the embedded store.
	Options []Option
}

// Store is an opened store and the Service over it.
type Store struct {
	kind      StoreKind
	location  string
	namespace string
	svc       *Service
	embedded  *Embedded
	close     func() error
	closeOnce sync.Once
	closeErr  error
}

// OpenStore opens the store cfg chooses (see StoreConfig) and a Service
// over it. On a daemon, blobs are read straight from its content
// directory when the daemon reports one this process can read (same host
// and user), over gRPC otherwise. Close releases the store.
//
// Opening an embedded store that another process holds fails with a
// StoreInUseError after cfg.StoreTimeout; a daemon that cannot be reached,
// with a ConnectError.
func OpenStore(ctx context.Context, cfg StoreConfig) (*Store, error) {
	kind, location, err := chooseStore(cfg, answers)
	if err != nil {
		return nil, err
	}
	ns := cfg.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	opts := append(append([]Option{}, cfg.Options...), WithNamespace(ns))
	if err := WithNamespace(ns)(&Service{}); err != nil {
		return nil, err // before the store is held
	}
	log.G(ctx).WithFields(log.Fields{"store": kind, "location": location, "namespace": ns}).Debug("store chosen")
	st := &Store{kind: kind, location: location, namespace: ns}
	if kind == StoreEmbedded {
		var eopts []EmbeddedOption
		if cfg.StoreTimeout > 0 {
			eopts = append(eopts, WithStoreTimeout(cfg.StoreTimeout))
		}
		e, err := OpenEmbedded(ctx, location, eopts...)
		if err != nil {
			return nil, err
		}
		svc, err := New(e.ContentStore(), e.ImageStore(), e.LeaseManager(), append(opts, WithBatch(e.Batch), WithBlobProvider(e.BlobProvider()))...)
		if err != nil {
			_ = e.Close()
			return nil, err
		}
		st.svc, st.embedded, st.close = svc, e, e.Close
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
	svc, err := New(cs, c.ImageService(), c.LeasesService(), opts...)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	// Only ctrpush's own leases (LabelLeaseOwner), in this namespace: the
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
	st.svc, st.close = svc, c.Close
	return st, nil
}

// chooseStore applies StoreConfig's order; answers probes a socket.
func chooseStore(cfg StoreConfig, answers func(address string) bool) (StoreKind, string, error) {
	switch {
	case cfg.Root != "":
		return StoreEmbedded, cfg.Root, nil
	case cfg.Address != "":
		return StoreContainerd, cfg.Address, nil
	case cfg.FallbackRoot == "":
		return "", "", fmt.Errorf("open store: no root directory or daemon address given: %w", errdefs.ErrInvalidArgument)
	case answers(probeAddress):
		return StoreContainerd, probeAddress, nil
	}
	return StoreEmbedded, cfg.FallbackRoot, nil
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
func (s *Store) Kind() StoreKind { return s.kind }

// Location is the embedded store's directory or the daemon's socket.
func (s *Store) Location() string { return s.location }

// Namespace is the containerd namespace the Service works in.
func (s *Store) Namespace() string { return s.namespace }

// Service is the image service over the store.
func (s *Store) Service() *Service { return s.svc }

// Embedded is the embedded store (for GarbageCollect), nil on a daemon.
// Close closes it.
func (s *Store) Embedded() *Embedded { return s.embedded }

// Close releases the store: the embedded store for other processes, or
// the connection to the daemon. Calls after the first return its result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}
