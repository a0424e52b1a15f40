package imageservice

import (
	"errors"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ctrpush/ctrpush/internal/registry"
	"github.com/ctrpush/ctrpush/progress"
	"github.com/ctrpush/ctrpush/sign"
)

// DefaultMaxConcurrentUploads bounds the transfers in flight to a
// destination when WithMaxConcurrentUploads is not given, together with
// DefaultMaxBytesInFlight; to a registry close by (the tag check answered
// in under 5 ms) at most 8 blobs are uploaded at once. 64 is the raw
// pusher's best concurrency across a link in docs/BENCHMARKS.md (100
// blobs of 1 MiB at a 50 ms round trip: 0.81 s with 64 in flight, 1.88 s
// with 8).
const DefaultMaxConcurrentUploads = 64

// DefaultMaxBytesInFlight bounds the bytes of the blobs in flight at once
// when WithMaxConcurrentUploads is not given (a blob larger than the bound
// goes alone): many small blobs go at once (a link's round trips, not its
// bandwidth, bound them), large ones a few at a time, so they do not
// thrash. To a registry close by (the tag check answered in under 5 ms) at
// most 8 blobs are uploaded at once, under both bounds: there the
// registry's work bounds the push.
const DefaultMaxBytesInFlight = 512 << 20

// TransferOption configures one Push, PlanPush, Pull or RemoteTags. Each
// of them refuses an option's bad value and the pairs that exclude each
// other (see CheckTransferOptions); an option a call does not use is
// ignored (WithChunkSize by Pull, say), except WithDestination, which Pull
// refuses.
type TransferOption func(*transferOptions) error

type transferOptions struct {
	// dests are the destinations asked for, in order (WithDestination).
	dests []string
	// bestEffort: with several destinations, each is tagged when it is
	// complete, whatever the others (WithBestEffort).
	bestEffort bool
	// compression, when set, converts layers (WithCompression).
	compression *Compression
	// compressHooks let a test control the conversion's timing.
	compressHooks *compressHooks
	platforms     []ocispec.Platform
	all           bool
	plainHTTP     bool
	hosts         docker.RegistryHosts
	sink          progress.Sink
	maxUploads    int
	// countGiven: maxUploads is the caller's (WithMaxConcurrentUploads),
	// and bounds alone; otherwise maxBytes and the bound close by apply
	// too (see limiter).
	countGiven bool
	// maxBytes bounds the bytes of the blobs in flight when no count was
	// given.
	maxBytes int64
	// limiterHooks let a test control the limiter's timing.
	limiterHooks *limiterHooks
	retry        RetryPolicy
	// nondistributable: upload non-distributable (foreign) layers too.
	nondistributable bool
	// chunks are PATCH chunk sizes by registry host ("" for every other).
	chunks map[string]int64
	// referrers travel with the image (WithReferrers), those of the
	// image's manifests only with these artifact types when set.
	referrers     bool
	referrerTypes []string
	// signers sign what each tag names (WithSigner).
	signers []sign.Signer
}

// chunkSize is the chunk size asked for registry, 0 for none.
func (o *transferOptions) chunkSize(registry string) int64 {
	if n, ok := o.chunks[registry]; ok {
		return n
	}
	return o.chunks[""]
}

// WithDestination pushes to ref instead of the source's own name (default:
// the source name). With a tagless source (every tag of a repository) ref
// must be a repository without tag; with a tagged source a tagless ref
// takes the source's tag. Push and PlanPush only.
//
// Given several times, Push publishes the image to every destination in
// one run: one walk of the image and one platform selection for all, each
// blob read from the store once for every destination that needs its
// bytes, and no destination tagged until every destination holds every
// blob and child manifest (see WithBestEffort). Each destination keeps
// its own mounts, chunking, credentials and record of what it holds.
func WithDestination(ref string) TransferOption {
	return func(o *transferOptions) error {
		if ref == "" {
			return &OptionError{Option: "WithDestination", Err: errors.New("empty destination reference")}
		}
		o.dests = append(o.dests, ref)
		return nil
	}
}

// WithBestEffort tags each destination of a push to several (repeated
// WithDestination) as soon as it holds the whole image, whether or not
// the others failed. Default: no destination is tagged unless every one
// holds the whole image, so the registries never disagree about the tag.
func WithBestEffort() TransferOption {
	return func(o *transferOptions) error { o.bestEffort = true; return nil }
}

// WithPlatforms pushes (or pulls) only the manifests of these platforms
// ("linux/arm64"). One platform pushes that manifest; several push a new
// index of just those manifests (its digest differs from the local
// image's). Default: the whole image when all of it is present, else the
// host's manifest.
func WithPlatforms(ps ...string) TransferOption {
	return func(o *transferOptions) error {
		for _, s := range ps {
			p, err := platforms.Parse(s)
			if err != nil {
				return &ReferenceError{What: "platform", Value: s, Err: err}
			}
			o.platforms = append(o.platforms, platforms.Normalize(p))
		}
		return nil
	}
}

// WithAllPlatforms pushes the whole image as it is; missing content is an
// error naming the missing blobs (default false). For Pull: every
// platform's layers.
func WithAllPlatforms() TransferOption {
	return func(o *transferOptions) error { o.all = true; return nil }
}

// WithNondistributableLayers uploads non-distributable ("foreign") layers
// too — Docker's foreign layer and OCI's non-distributable media types, such
// as Windows base layers — which must then be in the store. Default: they
// are never uploaded and need not be in the store (the registry's clients
// fetch them from their URLs), as ctr, nerdctl and crane do.
func WithNondistributableLayers() TransferOption {
	return func(o *transferOptions) error { o.nondistributable = true; return nil }
}

// MinChunkSize is the smallest chunk WithChunkSize takes: 64 KiB. Smaller
// chunks only multiply the round trips (100-byte chunks of a 3 MiB layer
// are 31,000 PATCHes); no registry needs them (GHCR caps a PATCH at 4 MiB
// from above; distribution sets no minimum; a registry's
// OCI-Chunk-Min-Length raises the chunk further, never lowers it).
const MinChunkSize = 64 << 10

// WithChunkSize uploads blobs to registry ("host[:port]"; "" for every
// registry not named in another WithChunkSize) in PATCH chunks of at most
// n bytes, for registries and proxies that refuse large bodies (GHCR caps
// one PATCH at 4 MiB; Cloudflare-fronted registries refuse bodies over
// 100 MB). Default: one PUT per blob, switching to chunks when a body is
// refused as too large.
func WithChunkSize(registry string, n int64) TransferOption {
	return func(o *transferOptions) error {
		if n < MinChunkSize {
			return &OptionError{Option: "WithChunkSize", Value: n, Err: errors.New("must be at least 65536 bytes (64 KiB)")}
		}
		if o.chunks == nil {
			o.chunks = map[string]int64{}
		}
		o.chunks[registry] = n
		return nil
	}
}

// WithPlainHTTP talks HTTP, not HTTPS, to every registry (default: HTTP
// only for loopback registries, as docker and nerdctl do). It configures
// the default registry hosts, so it cannot be combined with
// WithRegistryHosts (set HostsConfig.PlainHTTP there).
func WithPlainHTTP() TransferOption {
	return func(o *transferOptions) error { o.plainHTTP = true; return nil }
}

// WithRegistryHosts sets how registry hosts are reached: endpoints, TLS,
// authorization (default: RegistryHosts(HostsConfig{}) — no hosts
// directory, anonymous access).
func WithRegistryHosts(h docker.RegistryHosts) TransferOption {
	return func(o *transferOptions) error { o.hosts = h; return nil }
}

// WithProgress sends progress events to sink (default: discarded).
func WithProgress(sink progress.Sink) TransferOption {
	return func(o *transferOptions) error { o.sink = sink; return nil }
}

// WithMaxConcurrentUploads bounds uploads (and, for Pull, downloads) in
// flight to n, with no byte bound and no smaller bound close by (must be
// ≥ 1). Default: DefaultMaxConcurrentUploads and DefaultMaxBytesInFlight,
// 8 uploads to a registry close by; a pull fetches 8 blobs at a time.
func WithMaxConcurrentUploads(n int) TransferOption {
	return func(o *transferOptions) error {
		if n < 1 {
			return &OptionError{Option: "WithMaxConcurrentUploads", Value: n, Err: errors.New("must be at least 1")}
		}
		o.maxUploads, o.countGiven = n, true
		return nil
	}
}

// WithMaxRetries sets how many times a transient registry fault
// (connection reset or refused, timeout, 408, 429, 500, 502, 503, 504)
// is retried per request, with exponential backoff and jitter, honouring Retry-After
// (default DefaultMaxRetries; 0: no retry).
func WithMaxRetries(n int) TransferOption {
	return func(o *transferOptions) error {
		if n < 0 {
			return &OptionError{Option: "WithMaxRetries", Value: n, Err: errors.New("must not be negative")}
		}
		o.retry.MaxRetries = n
		return nil
	}
}

// WithRetryPolicy replaces the whole retry policy: which faults are
// retried, how often, and the waits (default DefaultRetryPolicy). A later
// WithMaxRetries changes its MaxRetries.
func WithRetryPolicy(p RetryPolicy) TransferOption {
	return func(o *transferOptions) error {
		if p.MaxRetries < 0 || p.Backoff < 0 || p.MaxBackoff < 0 || p.RetryAfterCap < 0 || p.IdleTimeout < 0 {
			return &OptionError{Option: "WithRetryPolicy", Err: errors.New("counts and durations must not be negative")}
		}
		p.Statuses = append([]int(nil), p.Statuses...)
		o.retry = p
		return nil
	}
}

// CheckTransferOptions reports, without doing anything, the *OptionError
// (or *ReferenceError for a platform) that Push, PlanPush or Pull would
// return for opts: a bad value, WithAllPlatforms with WithPlatforms, or
// WithPlainHTTP with WithRegistryHosts. A caller can refuse bad options
// before it opens a store or starts serving. It knows nothing of the call
// the options are for: Pull's refusal of WithDestination is Pull's own.
func CheckTransferOptions(opts ...TransferOption) error {
	_, err := newTransferOptions(opts)
	return err
}

// newTransferOptions applies opts over the defaults and checks them.
func newTransferOptions(opts []TransferOption) (transferOptions, error) {
	o := transferOptions{sink: progress.Discard, maxUploads: DefaultMaxConcurrentUploads, maxBytes: DefaultMaxBytesInFlight, retry: DefaultRetryPolicy}
	o.retry.Statuses = append([]int(nil), DefaultRetryPolicy.Statuses...)
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if o.all && len(o.platforms) > 0 {
		return o, &OptionError{Option: "WithAllPlatforms", Excludes: "WithPlatforms"}
	}
	if o.plainHTTP && o.hosts != nil {
		return o, &OptionError{Option: "WithPlainHTTP", Excludes: "WithRegistryHosts"}
	}
	if o.compression != nil && o.referrers {
		return o, &OptionError{Option: "WithCompression", Excludes: "WithReferrers"}
	}
	if o.hosts == nil {
		o.hosts = DefaultRegistryHosts(o.plainHTTP)
	}
	return o, nil
}

// Registry configuration and errors, from the protocol package.
type (
	// HostsConfig says how to reach registries; see RegistryHosts.
	HostsConfig = registry.HostsConfig
	// RegistryError is an answer from a registry that ended an operation.
	RegistryError = registry.Error
	// ForeignLayersError is a manifest the registry refused over the
	// non-distributable layers it names by URL.
	ForeignLayersError = registry.ForeignLayersError
	// RetryPolicy says which registry faults are retried and how.
	RetryPolicy = registry.RetryPolicy
)

// Registry defaults.
const (
	// DefaultMaxRetries is how often a transient registry fault is retried.
	DefaultMaxRetries = registry.DefaultMaxRetries
	// DefaultResponseHeaderTimeout is how long a registry may take to
	// answer a request it has received in full.
	DefaultResponseHeaderTimeout = registry.DefaultResponseHeaderTimeout
)

// DefaultRetryPolicy retries transient faults (connection refused, reset
// or timed out, 408, 429, 500, 502, 503, 504) 5 times with exponential
// backoff from 0.5 s, honouring a Retry-After of up to 2 minutes.
var DefaultRetryPolicy = registry.DefaultRetryPolicy

// RegistryHosts builds containerd's registry host configuration from c:
// hosts.toml (server, mirrors, capabilities, CA, client certificates,
// skip_verify, headers), credentials and timeouts.
func RegistryHosts(c HostsConfig) docker.RegistryHosts { return registry.RegistryHosts(c) }

// DefaultRegistryHosts reaches registries over HTTPS, or HTTP for loopback
// hosts (127.0.0.0/8, ::1, localhost) and when plainHTTP is set, with
// anonymous access.
func DefaultRegistryHosts(plainHTTP bool) docker.RegistryHosts {
	return registry.RegistryHosts(HostsConfig{PlainHTTP: plainHTTP})
}

// SplitHostsDirs splits a colon-separated list of directories, dropping
// empty entries.
func SplitHostsDirs(list string) []string { return registry.SplitHostsDirs(list) }
