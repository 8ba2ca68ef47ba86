package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Store is what a pull writes into.
type Store interface {
	content.Ingester
	content.Provider
}

// ProgressFunc reports a blob's download: offset of total bytes so far, and
// done once it is committed (or was already there).
type ProgressFunc func(desc ocispec.Descriptor, offset, total int64, done bool)

// PullOptions configures Pull.
type PullOptions struct {
	RegistryOptions
	// Platform selects the manifest from an index; nil is the host's.
	Platform *ocispec.Platform
	// Concurrency bounds parallel blob downloads; 0 is 3.
	Concurrency int
	// Progress, when set, is called as blobs download. Calls are serialized.
	Progress ProgressFunc
	// OnBlobCommitted, when set, is called once per config and layer as
	// soon as it is in the store (in completion order, not layer order;
	// calls are serialized), so an unpacker can start on layer 0 while later
	// layers still download.
	OnBlobCommitted func(desc ocispec.Descriptor)
	// Hold, when set, is called with each blob before Pull looks for it in
	// the store (concurrently: it must be safe for that), so the caller can
	// keep a blob already there, which Pull then does not fetch, from being
	// collected before the caller's image record references it.
	Hold func(d digest.Digest)
}

// Pull fetches ref (a tag or digest reference) into store: the root
// manifest or index, the manifest for the platform, its config and layers.
// It returns the root's descriptor; content.ResolveManifest finds the
// platform's manifest under it. Blobs already in the store are not fetched;
// partial ingests left by an earlier failure are resumed.
func Pull(ctx context.Context, store Store, ref string, opts PullOptions) (ocispec.Descriptor, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull: %w", err)
	}
	repo, err := NewRepository(ctx, r, opts.RegistryOptions)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", r, err)
	}
	root, err := repo.Resolve(ctx)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull: %w", err)
	}
	if err := PullResolved(ctx, store, repo, root, opts); err != nil {
		return ocispec.Descriptor{}, err
	}
	return root, nil
}

// PullResolved is Pull for a root the caller already resolved through f
// (a Repository): it fetches root and what the platform needs under it,
// without resolving the reference again.
func PullResolved(ctx context.Context, store Store, f Fetcher, root ocispec.Descriptor, opts PullOptions) error {
	p := &puller{store: store, fetcher: f, opts: opts}
	if err := p.pull(ctx, root); err != nil {
		if r, ok := f.(*Repository); ok {
			return fmt.Errorf("pull %s: %w", r.Reference(), err)
		}
		return fmt.Errorf("pull %s: %w", root.Digest, err)
	}
	return nil
}

type puller struct {
	store   Store
	fetcher Fetcher
	opts    PullOptions
	mu      sync.Mutex // serializes the callbacks
}

func (p *puller) pull(ctx context.Context, root ocispec.Descriptor) error {
	platform := content.HostPlatform()
	if p.opts.Platform != nil {
		platform = *p.opts.Platform
	}
	matcher := content.NewMatcher(platform)
	desc := root
	for depth := 0; ; depth++ {
		if depth > content.MaxDepth {
			return fmt.Errorf("index %s: nested deeper than %d: %w", root.Digest, content.MaxDepth, errdefs.ErrInvalidArgument)
		}
		if err := p.fetch(ctx, desc); err != nil {
			return err
		}
		if content.IsManifest(desc.MediaType) {
			break
		}
		idx, err := content.ReadIndex(ctx, p.store, desc)
		if err != nil {
			return err
		}
		next, err := content.SelectManifest(idx, matcher)
		if err != nil {
			return fmt.Errorf("index %s: platform %s: %w", desc.Digest, content.FormatPlatform(platform), err)
		}
		desc = next
	}
	m, err := content.ReadImageManifest(ctx, p.store, desc)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	n := p.opts.Concurrency
	if n <= 0 {
		n = 3
	}
	g.SetLimit(n)
	for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		g.Go(func() error {
			if err := p.fetch(gctx, b); err != nil {
				return err
			}
			if p.opts.OnBlobCommitted != nil {
				p.mu.Lock()
				p.opts.OnBlobCommitted(b)
				p.mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

func (p *puller) progress(desc ocispec.Descriptor, offset int64, done bool) {
	if p.opts.Progress == nil {
		return
	}
	p.mu.Lock()
	p.opts.Progress(desc, offset, desc.Size, done)
	p.mu.Unlock()
}

func (p *puller) fetch(ctx context.Context, desc ocispec.Descriptor) error {
	if p.opts.Hold != nil {
		p.opts.Hold(desc.Digest)
	}
	err := FetchBlob(ctx, p.store, p.fetcher, desc, p.progress)
	if err != nil {
		return fmt.Errorf("blob %s (%s): %w", desc.Digest, desc.MediaType, err)
	}
	return nil
}

// IngestRef is the ingest ref under which a blob is downloaded: one per
// digest, so concurrent pulls of the same blob share one download.
func IngestRef(desc ocispec.Descriptor) string { return "remote-" + desc.Digest.String() }

// FetchBlob downloads desc into store through f unless it is there already,
// resuming a partial ingest with a range request. Data that fails
// verification (or overruns the size) is discarded, so the next attempt
// starts clean; a network failure keeps what arrived, for resuming.
func FetchBlob(ctx context.Context, store Store, f Fetcher, desc ocispec.Descriptor, progress func(desc ocispec.Descriptor, offset int64, done bool)) error {
	if err := content.ValidateDescriptor(desc); err != nil {
		return err
	}
	if progress == nil {
		progress = func(ocispec.Descriptor, int64, bool) {}
	}
	breaks := 0
	for attempt := 0; ; attempt++ {
		if ra, err := store.ReaderAt(ctx, desc); err == nil {
			ra.Close()
			progress(desc, desc.Size, true)
			return nil
		}
		w, err := store.Writer(ctx, IngestRef(desc), desc)
		switch {
		case errdefs.IsAlreadyExists(err):
			progress(desc, desc.Size, true)
			return nil
		case errdefs.IsUnavailable(err):
			// Another pull is downloading this blob: wait for it.
			if err := sleep(ctx, attempt); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		before := ingestOffset(w)
		resumed, err := copyInto(ctx, w, f, desc, progress)
		if err != nil && breaks < maxBreaks && resumable(ctx, err) && ingestOffset(w) > before {
			// The transfer broke after making progress: resume from what
			// the ingest holds, with a Range request.
			breaks++
			slog.Info("content: blob download broke, resuming", "digest", desc.Digest, "offset", ingestOffset(w), "of", desc.Size, "err", err)
			if err := sleep(ctx, breaks); err != nil {
				return err
			}
			continue
		}
		if err == nil {
			progress(desc, desc.Size, true)
			return nil
		}
		if errdefs.IsAlreadyExists(err) {
			return nil
		}
		if st, serr := w.Status(); serr == nil && st.Offset == 0 {
			// Nothing arrived (cancelled, refused): keep no empty ingest.
			discard(ctx, store, desc)
		}
		if errdefs.IsFailedPrecondition(err) {
			discard(ctx, store, desc)
			if resumed {
				// The bad bytes may be in the part kept from before: once
				// more from scratch.
				continue
			}
		}
		return err
	}
}

// maxBreaks bounds how often one blob's download may break and resume
// within a pull.
const maxBreaks = 8

// resumable says whether a failed transfer may be resumed: the network
// broke, not the data, the caller or the server's refusal.
func resumable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	for _, class := range []func(error) bool{errdefs.IsFailedPrecondition, errdefs.IsNotFound, errdefs.IsPermissionDenied,
		errdefs.IsUnauthorized, errdefs.IsInvalidArgument, errdefs.IsAlreadyExists, errdefs.IsNotImplemented} {
		if class(err) {
			return false
		}
	}
	return true
}

func ingestOffset(w content.Writer) int64 {
	st, err := w.Status()
	if err != nil {
		return 0
	}
	return st.Offset
}

// copyInto streams desc from the writer's offset and commits. resumed says
// whether data from an earlier attempt was kept.
func copyInto(ctx context.Context, w content.Writer, f Fetcher, desc ocispec.Descriptor, progress func(ocispec.Descriptor, int64, bool)) (resumed bool, err error) {
	defer w.Close()
	st, err := w.Status()
	if err != nil {
		return false, err
	}
	offset := st.Offset
	if offset > desc.Size {
		if err := w.Truncate(0); err != nil {
			return false, err
		}
		offset = 0
	}
	resumed = offset > 0
	progress(desc, offset, false)
	if offset < desc.Size || desc.Size == 0 && offset == 0 {
		rc, err := f.Fetch(ctx, desc, offset)
		if errors.Is(err, ErrRangeIgnored) {
			if err := w.Truncate(0); err != nil {
				return false, err
			}
			offset, resumed = 0, false
			rc, err = f.Fetch(ctx, desc, 0)
		}
		if err != nil {
			return resumed, err
		}
		_, err = io.Copy(&progressWriter{w: w, desc: desc, off: offset, fn: progress}, rc)
		rc.Close()
		if err != nil {
			return resumed, err
		}
	}
	return resumed, w.Commit(ctx, desc.Size, desc.Digest)
}

// discard removes a failed ingest when the store can (IngestManager).
func discard(ctx context.Context, store Store, desc ocispec.Descriptor) {
	if im, ok := store.(content.IngestManager); ok {
		// On failure the ingest stays for the next attempt, which
		// re-verifies it anyway.
		_ = im.Abort(ctx, IngestRef(desc))
	}
}

func sleep(ctx context.Context, attempt int) error {
	return sleepCtx(ctx, time.Duration(50<<min(attempt, 4))*time.Millisecond) // 50ms … 800ms
}

// progressWriter reports progress every progressStep bytes.
type progressWriter struct {
	w    io.Writer
	desc ocispec.Descriptor
	off  int64
	last int64
	fn   func(ocispec.Descriptor, int64, bool)
}

const progressStep = 256 << 10

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.off += int64(n)
	if p.off-p.last >= progressStep {
		p.last = p.off
		p.fn(p.desc, p.off, false)
	}
	return n, err
}
