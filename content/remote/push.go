package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushOptions configures Push.
type PushOptions struct {
	RegistryOptions
	// Platform, when set and root is an index, pushes only that platform's
	// manifest (the tag then names the manifest). Nil pushes root whole:
	// every manifest under it, each of whose blobs must be in the store.
	Platform *ocispec.Platform
	// MountFrom lists repositories on the same registry the blobs may be
	// mounted from instead of uploaded (the registry decides).
	MountFrom []string
	// Progress, when set, hears of each blob: pushed, mounted or exists.
	Progress func(desc ocispec.Descriptor, how string)
}

// Push uploads root (a manifest or index in store) and everything under
// it to ref (a tag or digest reference) and returns the descriptor ref now
// names. Blobs the registry has are skipped; missing local blobs are an
// errdefs.ErrNotFound naming them before anything is uploaded.
func Push(ctx context.Context, store content.Provider, root ocispec.Descriptor, ref string, opts PushOptions) (ocispec.Descriptor, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push: %w", err)
	}
	top := root
	if opts.Platform != nil && content.IsIndex(root.MediaType) {
		if top, _, err = content.ResolveManifest(ctx, store, root, content.NewMatcher(*opts.Platform)); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: platform %s: %w", r, content.FormatPlatform(*opts.Platform), err)
		}
	}
	// Children before parents: a registry may refuse a manifest whose
	// blobs it lacks.
	var order []ocispec.Descriptor
	if err := walkImage(ctx, store, top, 0, &order); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", r, err)
	}
	var missing []string
	for _, d := range order {
		if _, err := store.ReaderAt(ctx, d); err != nil {
			missing = append(missing, d.Digest.String()+" ("+d.MediaType+")")
		}
	}
	if len(missing) > 0 {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %d blobs are not in the content store (pull them, or push one platform with --platform): %v: %w", r, len(missing), missing, errdefs.ErrNotFound)
	}
	repo, err := openRepository(ctx, r, opts.RegistryOptions, true, opts.MountFrom)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", r, err)
	}
	for _, d := range order {
		isManifest := content.IsManifest(d.MediaType) || content.IsIndex(d.MediaType)
		if isManifest {
			tag := d.Digest.String()
			if d.Digest == top.Digest {
				tag = r.Identifier()
			}
			err = repo.putManifest(ctx, store, d, tag)
		} else {
			var how string
			how, err = repo.putBlob(ctx, store, d)
			if err == nil && opts.Progress != nil {
				opts.Progress(d, how)
			}
		}
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %s %s: %w", r, d.MediaType, d.Digest, err)
		}
	}
	return top, nil
}

// walkImage lists what desc references, children first, each once.
func walkImage(ctx context.Context, store content.Provider, desc ocispec.Descriptor, depth int, out *[]ocispec.Descriptor) error {
	if depth > content.MaxDepth {
		return fmt.Errorf("index %s: nested deeper than %d: %w", desc.Digest, content.MaxDepth, errdefs.ErrInvalidArgument)
	}
	for _, d := range *out {
		if d.Digest == desc.Digest {
			return nil
		}
	}
	switch {
	case content.IsIndex(desc.MediaType):
		idx, err := content.ReadIndex(ctx, store, desc)
		if errdefs.IsNotFound(err) {
			break // reported with the other missing blobs
		}
		if err != nil {
			return err
		}
		for _, m := range idx.Manifests {
			if err := walkImage(ctx, store, m, depth+1, out); err != nil {
				return err
			}
		}
	case content.IsManifest(desc.MediaType):
		m, err := content.ReadManifest(ctx, store, desc)
		if errdefs.IsNotFound(err) {
			break
		}
		if err != nil {
			return err
		}
		for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if err := walkImage(ctx, store, b, depth+1, out); err != nil {
				return err
			}
		}
	}
	*out = append(*out, desc)
	return nil
}

func (r *Repository) repoURL(e *endpoint, rest string) string {
	u := url.URL{Scheme: e.Scheme, Host: e.Host, Path: e.Path + "/" + r.ref.Context().RepositoryStr() + "/" + rest}
	return u.String()
}

// putBlob uploads d unless the registry has it, mounting it from another
// repository when allowed. how is exists, mounted or pushed.
func (r *Repository) putBlob(ctx context.Context, store content.Provider, d ocispec.Descriptor) (string, error) {
	a, err := r.send(ctx, CapPush, func(ctx context.Context, e *endpoint) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodHead, r.repoURL(e, "blobs/"+d.Digest.String()), nil)
	})
	if err == nil {
		a.resp.Body.Close()
		a.wd.stop()
		if a.resp.StatusCode == http.StatusOK {
			return "exists", nil
		}
	}
	var location string
	for _, from := range append(r.mountFrom, "") {
		if from == r.ref.Context().RepositoryStr() {
			continue
		}
		q := url.Values{}
		if from != "" {
			q.Set("mount", d.Digest.String())
			q.Set("from", from)
		}
		a, err := r.send(ctx, CapPush, func(ctx context.Context, e *endpoint) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodPost, r.repoURL(e, "blobs/uploads/")+"?"+q.Encode(), nil)
		})
		if err != nil {
			return "", fmt.Errorf("start upload: %w", err)
		}
		a.resp.Body.Close()
		a.wd.stop()
		switch a.resp.StatusCode {
		case http.StatusCreated:
			if from != "" {
				return "mounted", nil
			}
		case http.StatusAccepted:
			loc, err := a.resp.Request.URL.Parse(a.resp.Header.Get("Location"))
			if err != nil || a.resp.Header.Get("Location") == "" {
				return "", fmt.Errorf("start upload: no usable Location: %w", errdefs.ErrUnknown)
			}
			location = loc.String()
		default:
			return "", fmt.Errorf("start upload: HTTP %d: %w", a.resp.StatusCode, statusClass(a.resp.StatusCode))
		}
		if location != "" {
			break
		}
	}
	ra, err := store.ReaderAt(ctx, d)
	if err != nil {
		return "", err
	}
	defer ra.Close()
	u, err := url.Parse(location)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("digest", d.Digest.String())
	u.RawQuery = q.Encode()
	client, err := r.clientFor(ctx, r.usable(CapPush)[0])
	if err != nil {
		return "", err
	}
	rctx, cancel := context.WithCancel(ctx)
	wd := newWatchdog(r.opts.progressTimeout(), cancel)
	defer wd.stop()
	body := func() io.ReadCloser {
		return io.NopCloser(&kickReader{r: io.NewSectionReader(ra, 0, d.Size), wd: wd})
	}
	req, err := http.NewRequestWithContext(withWatchdog(rctx, wd), http.MethodPut, u.String(), body())
	if err != nil {
		return "", err
	}
	req.GetBody = func() (io.ReadCloser, error) { return body(), nil }
	req.ContentLength = d.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		return "", wd.explain(fmt.Errorf("upload: %w", err))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("upload: HTTP %d: %w", resp.StatusCode, statusClass(resp.StatusCode))
	}
	return "pushed", nil
}

func (r *Repository) putManifest(ctx context.Context, store content.Provider, d ocispec.Descriptor, tag string) error {
	b, err := content.ReadBlob(ctx, store, d, content.MaxManifestSize)
	if err != nil {
		return err
	}
	a, err := r.send(ctx, CapPush, func(ctx context.Context, e *endpoint) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.repoURL(e, "manifests/"+tag), bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", d.MediaType)
		return req, nil
	})
	if err != nil {
		return err
	}
	a.resp.Body.Close()
	a.wd.stop()
	if a.resp.StatusCode != http.StatusCreated && a.resp.StatusCode != http.StatusOK {
		return fmt.Errorf("put manifest: HTTP %d: %w", a.resp.StatusCode, statusClass(a.resp.StatusCode))
	}
	return nil
}
