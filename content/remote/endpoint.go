package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Repository is one image repository on a registry, reached through the
// endpoints its hosts configuration lists (mirrors in order, then the
// server), each authenticated on first use.
type Repository struct {
	ref  name.Reference
	opts RegistryOptions
	push bool
	// mountFrom lists repositories a push may mount blobs from.
	mountFrom []string
	eps       []*endpoint
}

type endpoint struct {
	Endpoint
	once   sync.Once
	client *http.Client
	err    error
}

// NewRepository reads the registry's hosts configuration and authenticates
// for pulling ref's repository at the first endpoint that answers.
func NewRepository(ctx context.Context, ref name.Reference, opts RegistryOptions) (*Repository, error) {
	return openRepository(ctx, ref, opts, false, nil)
}

func openRepository(ctx context.Context, ref name.Reference, opts RegistryOptions, push bool, mountFrom []string) (*Repository, error) {
	reg := ref.Context().RegistryStr()
	eps, err := LoadEndpoints(opts.HostsDir, reg)
	if err != nil {
		return nil, err
	}
	r := &Repository{ref: ref, opts: opts, push: push, mountFrom: mountFrom}
	for _, e := range eps {
		r.eps = append(r.eps, &endpoint{Endpoint: e})
	}
	// Fail early (a certificate, credentials) where no endpoint works.
	var errs []error
	for _, e := range r.usable(CapPull | CapResolve | CapPush) {
		if _, err := r.clientFor(ctx, e); err == nil {
			return r, nil
		} else {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("no endpoint in the hosts configuration of %s may be used: %w", reg, errdefs.ErrInvalidArgument)
	}
	return nil, errors.Join(errs...)
}

// Reference is the reference the repository was opened with.
func (r *Repository) Reference() name.Reference { return r.ref }

// Endpoints lists where the repository is tried, in order.
func (r *Repository) Endpoints() []Endpoint {
	out := make([]Endpoint, len(r.eps))
	for i, e := range r.eps {
		out[i] = e.Endpoint
	}
	return out
}

// usable lists the endpoints with any capability of c; pushes go only to
// endpoints that allow push, reads to those that allow them.
func (r *Repository) usable(c Capability) []*endpoint {
	var out []*endpoint
	for _, e := range r.eps {
		if e.Capabilities&c != 0 {
			out = append(out, e)
		}
	}
	return out
}

func (r *Repository) clientFor(ctx context.Context, e *endpoint) (*http.Client, error) {
	e.once.Do(func() {
		scopes := []string{r.ref.Context().Scope(transport.PullScope)}
		if r.push {
			scopes = []string{r.ref.Context().Scope(transport.PushScope)}
			for _, from := range r.mountFrom {
				scopes = append(scopes, r.ref.Context().Registry.Repo(from).Scope(transport.PullScope))
			}
		}
		e.client, e.err = r.opts.newClient(ctx, r.ref.Context(), e.Endpoint, scopes)
		if e.err != nil {
			e.err = fmt.Errorf("%s: %w", e.Endpoint, e.err)
		}
	})
	return e.client, e.err
}

// url is where kind/id of the repository is on e. Mirrors get ns= naming
// the upstream, as containerd sends it.
func (r *Repository) url(e *endpoint, kind, id string) string {
	u := url.URL{Scheme: e.Scheme, Host: e.Host, Path: e.Path + "/" + r.ref.Context().RepositoryStr() + "/" + kind + "/" + id}
	if e.Mirror {
		u.RawQuery = url.Values{"ns": {hostsDirName(r.ref.Context().RegistryStr())}}.Encode()
	}
	return u.String()
}

// attempt is one request sent to one endpoint.
type attempt struct {
	resp *http.Response
	wd   *watchdog
	ep   *endpoint
}

// send sends a request built by build to each endpoint with capability c
// in turn, until one answers with something other than a failure (network
// error, 4xx but 416, 5xx): a mirror that is down or lacks the content
// falls back to the next and finally to the server. The watchdog cancels
// an attempt that makes no progress for the progress timeout; the caller
// owns resp and wd.
func (r *Repository) send(ctx context.Context, c Capability, build func(ctx context.Context, e *endpoint) (*http.Request, error)) (attempt, error) {
	eps := r.usable(c)
	if len(eps) == 0 {
		return attempt{}, fmt.Errorf("no endpoint in the hosts configuration allows this: %w", errdefs.ErrNotFound)
	}
	var errs []error
	for i, e := range eps {
		last := i == len(eps)-1
		client, err := r.clientFor(ctx, e)
		if err != nil {
			errs = append(errs, err)
			if last {
				return attempt{}, errors.Join(errs...)
			}
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		wd := newWatchdog(r.opts.progressTimeout(), cancel)
		req, err := build(withWatchdog(rctx, wd), e)
		if err != nil {
			wd.stop()
			return attempt{}, err
		}
		for k, vs := range e.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		resp, err := client.Do(req)
		if err == nil && (resp.StatusCode < 400 || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable || last) {
			return attempt{resp: resp, wd: wd, ep: e}, nil
		}
		if err != nil {
			err = wd.explain(fmt.Errorf("%s: %w", e.Endpoint, err))
		} else {
			err = fmt.Errorf("%s: HTTP %d: %w", e.Endpoint, resp.StatusCode, statusClass(resp.StatusCode))
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		wd.stop()
		if ctx.Err() != nil || last {
			return attempt{}, errors.Join(append(errs, err)...)
		}
		errs = append(errs, err)
		slog.Info("content: registry endpoint failed, trying the next", "registry", r.ref.Context().RegistryStr(), "endpoint", e.Endpoint.String(), "err", err)
	}
	panic("unreachable")
}
