package imageservice

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ctrpush/ctrpush/internal/registry"
	"github.com/ctrpush/ctrpush/mount"
	"github.com/ctrpush/ctrpush/progress"
)

func namespaceOf(ctx context.Context) string {
	ns, _ := namespaces.Namespace(ctx)
	return ns
}

func kindOf(mediaType string) progress.Kind {
	switch {
	case images.IsIndexType(mediaType):
		return progress.KindIndex
	case images.IsManifestType(mediaType):
		return progress.KindManifest
	case images.IsConfigType(mediaType):
		return progress.KindConfig
	}
	return progress.KindLayer
}

// destination is one destination repository for a whole Push: its
// protocol client and what this Push already sent there. Each destination
// keeps its own record, so a blob known to one repository never counts as
// present in another.
type destination struct {
	repo *registry.Repository
	mu   sync.Mutex
	sent map[digest.Digest]*inflight
	// near: the first round trip to the registry was short (loopback or a
	// LAN), where the registry's own work, not the round trips, bounds
	// a push: fewer uploads in flight (nearUploads) do better there.
	near bool
}

// nearRoundTrip separates a registry close by from one across a link.
const nearRoundTrip = 5 * time.Millisecond

// nearUploads is the default bound on uploads in flight to a registry
// close by (the loopback sweep in docs/BENCHMARKS.md: 8 beat 4, and 64
// lost 10% to 8 on 200 small layers on 2 cores).
const nearUploads = 8

// observeRoundTrip records how long the first request took.
func (d *destination) observeRoundTrip(rt time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.near = rt < nearRoundTrip
}

func (d *destination) isNear() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.near
}

func newDestination(repo *registry.Repository) *destination {
	return &destination{repo: repo, sent: map[digest.Digest]*inflight{}}
}

// inflight is one digest's transfer; done closes when it ends, err says how.
type inflight struct {
	done chan struct{}
	err  error
}

// claim returns the transfer of d in flight or done, or registers a new one
// owned by the caller (owner true). A failed earlier transfer is replaced.
func (d *destination) claim(dg digest.Digest) (f *inflight, owner bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f, ok := d.sent[dg]; ok {
		select {
		case <-f.done:
			if f.err == nil {
				return f, false
			}
		default:
			return f, false
		}
	}
	f = &inflight{done: make(chan struct{})}
	d.sent[dg] = f
	return f, true
}

// blobSteps is what a push tries for one blob, in order, decided from the
// labels before any request. Push and PlanPush share it, so the dry run
// predicts what the push does.
type blobSteps struct {
	// check: ask the destination whether it has the blob first. Only when
	// the labels say it does, or name no other repository to mount from —
	// a mount of a blob the destination has succeeds too, and a HEAD
	// before every mount would double the requests — and never in a
	// repository the registry says does not exist.
	check bool
	// mountFrom are the repositories to mount from, closest path first,
	// each one the registry allows mounting from.
	mountFrom []string
	// local: the store has the bytes to upload.
	local bool
}

func stepsFor(n *node, registryName, path string, newRepo bool) blobSteps {
	var from []string
	target, err := reference.ParseNormalizedNamed(registryName + "/" + path)
	for _, c := range mount.Candidates(n.sources, registryName, path) {
		source, serr := reference.ParseNormalizedNamed(registryName + "/" + c)
		if err == nil && serr == nil && mount.CanBeMounted(n.desc.MediaType, target, source) {
			from = append(from, c)
		}
	}
	listed := mount.Listed(n.sources, registryName, path)
	return blobSteps{check: !newRepo && (len(from) == 0 || listed), mountFrom: from, local: n.present}
}

// blobOutcome is how a blob reached (or would reach) the destination.
type blobOutcome int

const (
	outcomeExists  blobOutcome = iota // the destination has it
	outcomeMounted                    // mounted from another repository
	outcomeUpload                     // its bytes must be sent
	outcomeMissing                    // not in the store, and no mount worked
)

// blobProber answers the questions of blobSteps: the push asks the
// registry to mount; the dry run only asks whether the source has it.
type blobProber interface {
	exists(ctx context.Context, desc ocispec.Descriptor) (bool, error)
	mount(ctx context.Context, desc ocispec.Descriptor, from string) (bool, error)
}

// resolveBlob walks steps for desc with p and says what is left to do and,
// when mounted, from where. When the outcome is an upload or missing, from
// names the first mount source whose answer was not a clear no (an error:
// the push's own mount may yet work there).
func resolveBlob(ctx context.Context, p blobProber, desc ocispec.Descriptor, steps blobSteps) (blobOutcome, string, error) {
	uncertain := ""
	lg := log.G(ctx).WithField("digest", desc.Digest)
	if steps.check {
		ok, err := p.exists(ctx, desc)
		switch {
		case ctx.Err() != nil:
			return 0, "", ctx.Err()
		case err != nil:
			lg.WithError(err).Debug("blob existence check failed")
		case ok:
			return outcomeExists, "", nil
		}
	}
	for _, from := range steps.mountFrom {
		ok, err := p.mount(ctx, desc, from)
		switch {
		case ctx.Err() != nil:
			return 0, "", ctx.Err()
		case err != nil && errdefs.IsDataLoss(err):
			return 0, "", err
		case err != nil:
			lg.WithError(err).WithField("from", from).Debug("mount failed")
			if uncertain == "" {
				uncertain = from
			}
		case ok:
			return outcomeMounted, from, nil
		}
	}
	if steps.local {
		return outcomeUpload, uncertain, nil
	}
	return outcomeMissing, uncertain, nil
}

// pushProber mounts for real; a source that lacks the blob is dropped
// from the blob's label. The upload session a registry opens in place of
// a mount is kept in *session (the last one; an earlier one is cancelled)
// for the upload that follows.
type pushProber struct {
	repo    *registry.Repository
	labels  content.Store
	session **registry.Upload
}

func (p pushProber) exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return p.repo.BlobExists(ctx, desc.Digest)
}

func (p pushProber) mount(ctx context.Context, desc ocispec.Descriptor, from string) (bool, error) {
	res, up, err := p.repo.Mount(ctx, desc, from)
	if err != nil {
		return false, err
	}
	if up != nil {
		(*p.session).Cancel(ctx)
		*p.session = up
	}
	if res == registry.SourceLacksBlob {
		log.G(ctx).WithFields(log.Fields{"digest": desc.Digest, "from": from}).Debug("mount source does not have the blob; dropping it from the label")
		if err := mount.DropSource(context.WithoutCancel(ctx), p.labels, desc.Digest, p.repo.Registry, from); err != nil {
			log.G(ctx).WithError(err).Debug("drop stale mount source")
		}
	} else if res != registry.Mounted {
		log.G(ctx).WithFields(log.Fields{"digest": desc.Digest, "from": from, "answer": res}).Debug("mount not done")
	}
	return res == registry.Mounted, nil
}

// tagCheck is tagState asked in the background.
type tagCheck struct {
	done            chan struct{}
	tagged, newRepo bool
	err             error
}

// errTagged ends a push whose tag turned out to name its root already:
// nothing is left to send.
var errTagged = errors.New("the tag already names the image")

// tagCheckError is the check's own failure, as each transfer that waited
// for it returns it.
type tagCheckError struct{ err error }

func (e *tagCheckError) Error() string { return e.err.Error() }
func (e *tagCheckError) Unwrap() error { return e.err }

func startTagCheck(ctx context.Context, d *destination, tag string, root ocispec.Descriptor) *tagCheck {
	c := &tagCheck{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		asked := time.Now()
		c.tagged, c.newRepo, c.err = tagState(ctx, d.repo, tag, root)
		d.observeRoundTrip(time.Since(asked))
	}()
	return c
}

// imagePushed is the check for what is pushed after the image (its
// referrers, by digest): the repository exists, and no tag is involved.
func imagePushed() *tagCheck {
	c := &tagCheck{done: make(chan struct{})}
	close(c.done)
	return c
}

// answeredWithin waits at most d from now for the check's answer and
// reports whether it came.
func (c *tagCheck) answeredWithin(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// wait returns, once the check answered, whether the repository is new;
// errTagged when the tag names the root already.
func (c *tagCheck) wait(ctx context.Context) (newRepo bool, err error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	switch {
	case c.err != nil:
		return false, &tagCheckError{c.err}
	case c.tagged:
		return false, errTagged
	}
	return c.newRepo, nil
}

// ended reports whether err is the check ending the push (the tag names
// the root, or the registry is unreachable), not a failed transfer: the
// push says so once, not as each transfer's failure.
func (c *tagCheck) ended(ctx context.Context, err error) bool {
	var ce *tagCheckError
	if errors.Is(err, errTagged) || errors.As(err, &ce) {
		return true
	}
	select {
	case <-c.done:
		return ctx.Err() != nil && (c.tagged || c.err != nil)
	default:
		return false
	}
}

// graphPush sends the part of one image graph below a root to one or
// several destinations (legs): blobs first, then manifests, then indexes,
// each digest once per destination, every destination's copy of a node at
// the same time (a blob's bytes are read from the store once for all the
// destinations that upload it); the roots last, by tag, and with several
// destinations only when every one holds everything below (unless
// WithBestEffort).
type graphPush struct {
	legs    []*leg
	g       *imageGraph
	cs      content.Store // reads, and label updates for stale mount sources
	virtual map[digest.Digest][]byte
	o       *transferOptions
	// shared, when set, bounds the transfers of several graph pushes run
	// side by side (the referrers of one level) together, in place of
	// each sendAll's own limiter.
	shared *limiter
	// mountingAbsent: the blobs the store lacks are being mounted; one
	// that cannot be is the push's outcome (and may lead to the host's
	// manifest instead), so the others it stops are not shown as failed.
	mountingAbsent bool
	// early records the blobs sent before this graph push (compressed
	// layers, sent as soon as compressed): their own events stand, so
	// this push shows nothing for them. Nil when there are none.
	early *sentEarly
	// signing, when set, signs the root and places its signatures at
	// each leg before the root level (WithSigner).
	signing *signing
}

func (p *graphPush) emit(l *leg, desc ocispec.Descriptor, state progress.State, current int64, err error) {
	p.o.sink.Emit(progress.Event{Destination: l.label, Transfer: &progress.Transfer{
		ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(), Kind: kindOf(desc.MediaType),
		State: state, Current: current, Total: desc.Size, Err: err,
	}})
}

func (p *graphPush) onRetry(ctx context.Context, l *leg, desc ocispec.Descriptor) func(time.Duration, error) {
	return func(wait time.Duration, err error) {
		log.G(ctx).WithError(err).WithField("digest", desc.Digest).Debugf("retrying in %s", wait)
		p.o.sink.Emit(progress.Event{Destination: l.label, Transfer: &progress.Transfer{ID: progress.ShortID(desc.Digest.String()), Digest: desc.Digest.String(),
			Kind: kindOf(desc.MediaType), State: progress.Retrying, RetryIn: wait, Total: desc.Size}})
	}
}

// errStopped is what progress shows for a transfer that ended because the
// push was cancelled: by the caller, or because another transfer failed
// (whose own Failed event carries that error).
var errStopped = fmt.Errorf("stopped: %w", context.Canceled)

// failure is the error a Failed event shows for err.
func failure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errStopped
	}
	return err
}

// run pushes root and everything below it to the push's one destination
// (a referrer's graph push) and returns its error.
func (p *graphPush) run(ctx context.Context, root ocispec.Descriptor) error {
	_, err := p.runLegs(ctx, root)
	return err
}

// runLegs pushes root and everything below it to every leg: first the
// blobs the store lacks (they can only be mounted: when a mount fails, the
// push ends before anything else is sent, so the caller can fall back to
// what the store has), then a height at a time: every blob at once
// (bounded), then the manifests above them, and so on; the root, the only
// node of the greatest height, last.
//
// It returns each leg's outcome — nil when its root was PUT, errTagged
// when its tag named the root already, errHeld when it holds everything
// but was not tagged because another leg failed, else its failure — and
// the error that ended the whole run: a blob the store lacks and no mount
// provided, or every leg's failure (the only leg's, with one).
func (p *graphPush) runLegs(ctx context.Context, root ocispec.Descriptor) ([]error, error) {
	runs := make([]*legRun, len(p.legs))
	for i, l := range p.legs {
		lctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		runs[i] = &legRun{leg: l, ctx: lctx, cancel: cancel}
	}
	nodes := p.g.below(root.Digest)
	for _, r := range runs {
		for _, n := range nodes {
			if !p.early.has(r.dest, n.desc.Digest) {
				p.emit(r.leg, n.desc, progress.Preparing, 0, nil)
			}
		}
	}
	h := heights(nodes)
	var absent, rest []*node
	for _, n := range nodes {
		if !n.present && !n.isManifest() && !skipped(n, p.o) {
			absent = append(absent, n)
		} else {
			rest = append(rest, n)
		}
	}
	p.mountingAbsent = true
	err := p.sendAll(ctx, runs, absent, root)
	p.mountingAbsent = false
	for level := 0; err == nil && level <= h[root.Digest]; level++ {
		var these []*node
		for _, n := range rest {
			if h[n.desc.Digest] == level {
				these = append(these, n)
			}
		}
		if level == h[root.Digest] {
			p.signing.placeAll(ctx, live(runs), root)
		}
		if level == h[root.Digest] && len(runs) > 1 && !p.o.bestEffort && slices.ContainsFunc(runs, func(r *legRun) bool {
			return r.failed() != nil && !errors.Is(r.failed(), errTagged)
		}) {
			break // tags move together or not at all
		}
		err = p.sendAll(ctx, runs, these, root)
	}
	outcomes := make([]error, len(runs))
	for i, r := range runs {
		switch oc := r.failed(); {
		case oc != nil:
			outcomes[i] = oc
		case err != nil && len(runs) == 1:
			outcomes[i] = err
		case err != nil:
			outcomes[i] = errNotReached
			if _, ok := isLocalMissing(err); ok || ctx.Err() != nil {
				outcomes[i] = err
			}
		case !r.sentRoot():
			outcomes[i] = errHeld
		}
	}
	return outcomes, err
}

// sendAll sends nodes at once, at most maxUploads at a time (counted with
// the graph pushes it shares a bound with); the first failure stops the
// others. It returns nil only when every node was sent: stopped short by a
// failure under the bound (this push's own, or one beside it) it returns
// that failure, or errStopped when the failure is another graph push's.
// A failure of one leg among several stops only that leg.
func (p *graphPush) sendAll(ctx context.Context, runs []*legRun, nodes []*node, root ocispec.Descriptor) error {
	g, gctx := errgroup.WithContext(ctx)
	lim := p.shared
	if lim == nil {
		lim = newLimiter(p.o, p.legs)
	}
	var short atomic.Bool // some node was not sent
	for _, n := range nodes {
		if gctx.Err() != nil || lim.stopped() {
			short.Store(true)
			break // a transfer failed: start no more
		}
		// A transfer that must wait for room shows Waiting, as docker
		// push shows the layers beyond its concurrency.
		waiting := false
		release, err := lim.acquire(gctx, n.desc.Size, func() {
			if !waiting {
				waiting = true
				for _, r := range live(runs) {
					p.emit(r.leg, n.desc, progress.Waiting, 0, nil)
				}
			}
		})
		if err != nil {
			short.Store(true)
			break
		}
		g.Go(func() error {
			err := p.send(gctx, runs, n, n.desc.Digest == root.Digest, lim)
			release(err)
			if errors.Is(err, errStopped) {
				// Stopped by another transfer's failure, which that
				// transfer returns: the group's error must be it.
				short.Store(true)
				return nil
			}
			return err
		})
	}
	err := g.Wait()
	if err == nil && short.Load() {
		if err = ctx.Err(); err == nil {
			err = errStopped // a graph push sharing the bound failed
		}
	}
	return err
}

// send makes one node present at every leg that has not failed, at each
// once however many images of the Push share it. A leg's failure is
// recorded on it; send fails only when no leg is left (with one leg: its
// failure), or, while mounting the blobs the store lacks, when a mount
// failed at any leg (the push falls back for all of them together).
func (p *graphPush) send(ctx context.Context, runs []*legRun, n *node, isRoot bool, lim *limiter) error {
	todo := live(runs)
	if len(todo) == 0 {
		return errStopped
	}
	var reads *blobReads
	if !n.isManifest() && !skipped(n, p.o) {
		reads = newBlobReads(ctx, p.cs, n.desc, lim, len(todo), len(runs) == 1)
	}
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, r := range todo {
		wg.Go(func() {
			lctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			stop := context.AfterFunc(r.ctx, func() { cancel(context.Cause(r.ctx)) })
			defer stop()
			errs[i] = p.sendLeg(lctx, r, n, isRoot, lim, reads)
		})
	}
	wg.Wait()
	var first error
	for i, r := range todo {
		if errs[i] == nil {
			if isRoot {
				r.mu.Lock()
				r.rootSent = true
				r.mu.Unlock()
			}
			continue
		}
		if ctx.Err() != nil && errors.Is(errs[i], context.Canceled) {
			// Stopped with the whole run, not for this leg.
			if first == nil {
				first = errs[i]
			}
			continue
		}
		r.fail(errs[i])
		if first == nil {
			first = errs[i]
		}
	}
	if first == nil {
		return nil
	}
	if _, missing := isLocalMissing(first); missing && p.mountingAbsent {
		return first
	}
	if len(live(runs)) == 0 || ctx.Err() != nil {
		return first
	}
	return nil
}

// sendLeg makes n present at r's destination, once per destination
// however many images of the Push share it.
func (p *graphPush) sendLeg(ctx context.Context, r *legRun, n *node, isRoot bool, lim *limiter, reads *blobReads) (err error) {
	defer func() { reads.decline(r.leg) }() // when it did not join the upload
	if isRoot {
		return p.sendOwned(ctx, r.leg, n, true, reads)
	}
	f, owner := r.dest.claim(n.desc.Digest)
	if !owner {
		reads.decline(r.leg)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.done:
		}
		if f.err == nil {
			if !p.early.has(r.dest, n.desc.Digest) {
				p.emit(r.leg, n.desc, progress.Exists, n.desc.Size, nil)
			}
			return nil
		}
		return f.err
	}
	defer func() { f.err = err; close(f.done) }()
	return p.sendOwned(ctx, r.leg, n, false, reads)
}

func (p *graphPush) sendOwned(ctx context.Context, l *leg, n *node, isRoot bool, reads *blobReads) error {
	var err error
	if n.isManifest() {
		err = p.putManifest(ctx, l, n, isRoot)
	} else {
		err = p.sendBlob(ctx, l, n, reads)
	}
	if _, missing := isLocalMissing(err); err != nil && !missing && !(p.mountingAbsent && ctx.Err() != nil) && !l.check.ended(ctx, err) {
		// Content missing locally is not shown as a failed transfer: the
		// push may go on with the host's manifest (and says so), or fails
		// with an error naming the blob.
		p.emit(l, n.desc, progress.Failed, 0, failure(ctx, err))
	}
	return err
}

func (p *graphPush) sendBlob(ctx context.Context, l *leg, n *node, reads *blobReads) (err error) {
	if skipped(n, p.o) {
		p.emit(l, n.desc, progress.Skipped, 0, nil)
		return nil
	}
	repo := l.dest.repo
	// Nothing is written before the tag check answers: when the tag names
	// the image already, the push sends nothing but the check, wherever
	// the labels place its blobs (a mount is a write too).
	newRepo, err := l.check.wait(ctx)
	if err != nil {
		return err
	}
	steps := stepsFor(n, repo.Registry, repo.Path, newRepo)
	// session is the one a mount's 202 opened; the upload goes into it.
	var session *registry.Upload
	defer func() { session.Cancel(ctx) }()
	outcome, from, err := resolveBlob(ctx, pushProber{repo: repo, labels: p.cs, session: &session}, n.desc, steps)
	if outcome != outcomeMounted {
		from = ""
	}
	if err != nil {
		return err
	}
	switch outcome {
	case outcomeExists:
		p.emit(l, n.desc, progress.Exists, n.desc.Size, nil)
		return nil
	case outcomeMounted:
		p.o.sink.Emit(progress.Event{Destination: l.label, Transfer: &progress.Transfer{
			ID: progress.ShortID(n.desc.Digest.String()), Digest: n.desc.Digest.String(), Kind: kindOf(n.desc.MediaType),
			State: progress.Mounted, Current: n.desc.Size, Total: n.desc.Size, From: from,
		}})
		return nil
	case outcomeMissing:
		return p.missing(l, n)
	}
	// The bytes go: read once from the store for every destination that
	// uploads this blob now.
	ra, release, err := reads.join(ctx, l)
	if err != nil {
		return err
	}
	defer func() { release(err) }()
	p.emit(l, n.desc, progress.Pushing, 0, nil)
	var sent atomic.Int64
	err = repo.UploadBlob(ctx, n.desc, ra, registry.UploadOptions{
		Progress: func(n64 int64) { sent.Store(n64); p.emit(l, n.desc, progress.Pushing, n64, nil) },
		Via: func(how string) {
			p.o.sink.Emit(progress.Event{Destination: l.label, Transfer: &progress.Transfer{ID: progress.ShortID(n.desc.Digest.String()), Digest: n.desc.Digest.String(),
				Kind: kindOf(n.desc.MediaType), State: progress.Pushing, Current: sent.Load(), Total: n.desc.Size, Via: how}})
		},
		OnRetry:   p.onRetry(ctx, l, n.desc),
		ChunkSize: p.o.chunkSize(repo.Registry),
		Session:   session,
	})
	session = nil // the upload used it, or cancelled it when it failed
	if err != nil {
		return err
	}
	p.emit(l, n.desc, progress.Pushed, n.desc.Size, nil)
	return nil
}

// skipped reports whether blob n is a non-distributable layer that is not
// uploaded.
func skipped(n *node, o *transferOptions) bool {
	return !o.nondistributable && images.IsNonDistributable(n.desc.MediaType)
}

// missing is the error for a node the store lacks and no mount at l's
// destination provided.
func (p *graphPush) missing(l *leg, n *node) error {
	var err error = errdefs.ErrNotFound
	if reg := l.dest.repo.Registry; !n.isManifest() && mount.Known(n.sources, reg) {
		err = &mount.NotMountedError{Digest: n.desc.Digest, Registry: reg, Candidates: mount.Repos(n.sources[mount.LabelKey(reg)])}
	}
	return &localMissingError{desc: n.desc, err: err}
}

// manifestRef is where a manifest is PUT: the root by tag (so the tag moves
// last), anything else by digest.
func manifestRef(n *node, isRoot bool, tag string) string {
	if isRoot && tag != "" {
		return tag
	}
	return n.desc.Digest.String()
}

// putManifest PUTs manifest or index n at l's destination unless (not the
// root) the destination has that digest already.
func (p *graphPush) putManifest(ctx context.Context, l *leg, n *node, isRoot bool) error {
	if !n.present {
		return p.missing(l, n)
	}
	newRepo, err := l.check.wait(ctx)
	if err != nil {
		return err
	}
	repo := l.dest.repo
	ref := manifestRef(n, isRoot, l.tag)
	if (!isRoot || l.tag == "") && !newRepo { // a root by digest (a referrer) may be there already
		if have, err := repo.ManifestDigest(ctx, ref, n.desc.MediaType); err == nil && have == n.desc.Digest {
			p.emit(l, n.desc, progress.Exists, n.desc.Size, nil)
			return nil
		}
	}
	b, err := p.manifestBytes(ctx, n)
	if err != nil {
		return err
	}
	p.emit(l, n.desc, progress.Pushing, 0, nil)
	if err := repo.PutManifest(ctx, n.desc, b, ref, p.onRetry(ctx, l, n.desc)); err != nil {
		return err
	}
	p.emit(l, n.desc, progress.Pushing, n.desc.Size, nil)
	p.emit(l, n.desc, progress.Pushed, n.desc.Size, nil)
	return nil
}

func (p *graphPush) manifestBytes(ctx context.Context, n *node) ([]byte, error) {
	if b, ok := p.virtual[n.desc.Digest]; ok {
		return b, nil
	}
	b, err := content.ReadBlob(ctx, p.cs, n.desc)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, &localMissingError{desc: n.desc, err: err}
		}
		return nil, fmt.Errorf("read %s from the store: %w", n.desc.Digest, err)
	}
	return b, nil
}

// localMissingError marks a blob the local store lacks while pushing, as
// opposed to anything the registry answered.
type localMissingError struct {
	desc ocispec.Descriptor
	err  error
}

func (e *localMissingError) Error() string {
	return fmt.Sprintf("blob %s missing from the local store: %v", e.desc.Digest, e.err)
}

func (e *localMissingError) Unwrap() error { return e.err }

// isLocalMissing reports whether err is content missing from the store.
func isLocalMissing(err error) (*localMissingError, bool) {
	var lm *localMissingError
	ok := errors.As(err, &lm)
	return lm, ok
}
