package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Fetcher opens blobs (and manifests) by descriptor.
type Fetcher interface {
	// Fetch returns desc's bytes from offset on. The reader fails with
	// errdefs.ErrFailedPrecondition once more than desc.Size bytes arrive,
	// and with a timeout error when no byte arrives for the progress
	// timeout. A server that ignores the range gives ErrRangeIgnored (and
	// no reader): fetch again from 0.
	Fetch(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error)
}

// ErrRangeIgnored says the server would not resume at the offset asked.
var ErrRangeIgnored = errors.New("server ignored the range request")

var _ Fetcher = (*Repository)(nil)

// Resolve turns the reference into the descriptor of its manifest or index:
// HEAD first, GET when the registry does not say the digest. A digest
// reference must resolve to that digest.
func (r *Repository) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	id := r.ref.Identifier()
	var pinned digest.Digest
	if d, ok := r.ref.(name.Digest); ok {
		var err error
		if pinned, err = content.ParseDigest(d.DigestStr()); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", r.ref, err)
		}
	}
	desc, err := r.resolve(ctx, http.MethodHead, id)
	if err != nil && !errdefs.IsNotFound(err) {
		desc, err = r.resolve(ctx, http.MethodGet, id)
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", r.ref, err)
	}
	if pinned != "" && desc.Digest != pinned {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: registry answered with digest %s: %w", r.ref, desc.Digest, errdefs.ErrFailedPrecondition)
	}
	return desc, nil
}

func (r *Repository) resolve(ctx context.Context, method, id string) (ocispec.Descriptor, error) {
	a, err := r.send(ctx, CapResolve, func(ctx context.Context, e *endpoint) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, method, r.url(e, "manifests", id), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", strings.Join(content.ManifestMediaTypes, ", "))
		return req, nil
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	resp := a.resp
	defer a.wd.stop()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, fmt.Errorf("%s manifest: HTTP %d: %w", method, resp.StatusCode, statusClass(resp.StatusCode))
	}
	body := io.Reader(&kickReader{r: resp.Body, wd: a.wd})
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if method == http.MethodHead {
		d, err := content.ParseDigest(resp.Header.Get("Docker-Content-Digest"))
		if err != nil || resp.ContentLength <= 0 || !(content.IsManifest(mt) || content.IsIndex(mt)) {
			return ocispec.Descriptor{}, fmt.Errorf("HEAD gave no usable digest, size or media type: %w", errdefs.ErrUnknown)
		}
		if resp.ContentLength > content.MaxManifestSize {
			return ocispec.Descriptor{}, fmt.Errorf("manifest %s of %d bytes exceeds %d: %w", d, resp.ContentLength, content.MaxManifestSize, errdefs.ErrFailedPrecondition)
		}
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: resp.ContentLength}, nil
	}
	b, err := io.ReadAll(io.LimitReader(body, content.MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, a.wd.explain(err)
	}
	if len(b) > content.MaxManifestSize {
		return ocispec.Descriptor{}, fmt.Errorf("manifest exceeds %d bytes: %w", content.MaxManifestSize, errdefs.ErrFailedPrecondition)
	}
	if !(content.IsManifest(mt) || content.IsIndex(mt)) {
		mt = sniffMediaType(b)
	}
	if !(content.IsManifest(mt) || content.IsIndex(mt)) {
		return ocispec.Descriptor{}, fmt.Errorf("manifest of unsupported media type %q: %w", mt, errdefs.ErrNotImplemented)
	}
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.SHA256.FromBytes(b), Size: int64(len(b))}
	if err := content.CheckDocument(desc, b); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// Fetch implements Fetcher. Manifests and indexes are fetched from
// /manifests/, everything else from /blobs/.
func (r *Repository) Fetch(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := content.ValidateDescriptor(desc); err != nil {
		return nil, err
	}
	if offset < 0 || (desc.Size > 0 && offset >= desc.Size) {
		return nil, fmt.Errorf("fetch %s: offset %d of %d: %w", desc.Digest, offset, desc.Size, errdefs.ErrInvalidArgument)
	}
	kind := "blobs"
	if content.IsManifest(desc.MediaType) || content.IsIndex(desc.MediaType) {
		kind = "manifests"
	}
	a, err := r.send(ctx, CapPull, func(ctx context.Context, e *endpoint) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url(e, kind, desc.Digest.String()), nil)
		if err != nil {
			return nil, err
		}
		if kind == "manifests" {
			req.Header.Set("Accept", strings.Join(content.ManifestMediaTypes, ", "))
		}
		if offset > 0 {
			// An explicit end: some registries (ggcr's among them) only parse
			// the closed form.
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, desc.Size-1))
		}
		return req, nil
	})
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	resp, wd := a.resp, a.wd
	fail := func(err error) (io.ReadCloser, error) {
		resp.Body.Close()
		wd.stop()
		return nil, fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && offset > 0,
		resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		return fail(ErrRangeIgnored)
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != offset {
			return fail(fmt.Errorf("Content-Range %q does not start at %d: %w", resp.Header.Get("Content-Range"), offset, ErrRangeIgnored))
		}
	case resp.StatusCode == http.StatusOK:
	default:
		return fail(fmt.Errorf("HTTP %d: %w", resp.StatusCode, statusClass(resp.StatusCode)))
	}
	if kind == "manifests" {
		// A registry that serves a manifest as another kind than the one
		// named (by the index or by Resolve's Content-Type) is refused:
		// the body's own mediaType is checked against desc when read.
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); (content.IsManifest(mt) || content.IsIndex(mt)) && mt != desc.MediaType {
			return fail(fmt.Errorf("served as %q, expected %q: %w", mt, desc.MediaType, errdefs.ErrFailedPrecondition))
		}
	}
	want := desc.Size - offset
	if resp.ContentLength > want {
		return fail(fmt.Errorf("server announces %d bytes, the descriptor leaves %d: %w", resp.ContentLength, want, errdefs.ErrFailedPrecondition))
	}
	return &body{rc: resp.Body, left: want, wd: wd, dgst: desc.Digest}, nil
}

func rangeStart(cr string) (int64, bool) {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok = strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// body bounds a response to what the descriptor allows and feeds the
// progress watchdog.
type body struct {
	rc   io.ReadCloser
	left int64
	wd   *watchdog
	dgst digest.Digest
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.wd.kick()
	}
	if int64(n) > b.left {
		return 0, fmt.Errorf("blob %s: server sent more bytes than the descriptor's size: %w", b.dgst, errdefs.ErrFailedPrecondition)
	}
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		err = b.wd.explain(err)
	}
	return n, err
}

func (b *body) Close() error {
	b.wd.stop()
	return b.rc.Close()
}

// watchdog cancels a request whose response makes no progress for d.
type watchdog struct {
	d       time.Duration
	t       *time.Timer
	cancel  context.CancelFunc
	stalled atomic.Bool
}

func newWatchdog(d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{d: d, cancel: cancel}
	w.t = time.AfterFunc(d, func() {
		w.stalled.Store(true)
		cancel()
	})
	return w
}

func (w *watchdog) kick() { w.t.Reset(w.d) }

// pause stops the clock while the client itself waits (a retry backoff).
func (w *watchdog) pause() { w.t.Stop() }

// kickReader feeds a watchdog as bytes arrive.
type kickReader struct {
	r  io.Reader
	wd *watchdog
}

func (k *kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if n > 0 {
		k.wd.kick()
	}
	return n, err
}

func (w *watchdog) stop() {
	w.t.Stop()
	w.cancel()
}

func (w *watchdog) explain(err error) error {
	if w.stalled.Load() {
		return fmt.Errorf("no progress for %s: %w (%v)", w.d, context.DeadlineExceeded, err)
	}
	return err
}

// sniffMediaType reads the mediaType field of a manifest body, for
// registries that send a generic Content-Type.
func sniffMediaType(b []byte) string {
	var v struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	return v.MediaType
}
