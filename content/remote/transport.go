package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RegistryOptions says how to reach a registry.
type RegistryOptions struct {
	// PlainHTTP allows plain HTTP to any registry when HTTPS fails.
	PlainHTTP bool
	// InsecureRegistries lists hosts ("host" or "host:port") allowed plain
	// HTTP when HTTPS fails. Loopback hosts always are.
	InsecureRegistries []string
	// Keychain finds credentials; nil is authn.DefaultKeychain (docker's
	// config.json and its credential helpers).
	Keychain authn.Keychain
	// AuthHosts lists token servers, other than the registry itself, that
	// may receive the registry's credentials. Nil is DefaultAuthHosts.
	AuthHosts map[string][]string
	// ProgressTimeout fails a request whose response makes no progress for
	// this long; 0 is 5 minutes (containerd's image_pull_progress_timeout).
	ProgressTimeout time.Duration
	// Transport is the base HTTP transport; nil is a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// DefaultAuthHosts lets Docker Hub's credentials reach its token server.
var DefaultAuthHosts = map[string][]string{
	name.DefaultRegistry: {"auth.docker.io"},
}

const defaultProgressTimeout = 5 * time.Minute

func (o RegistryOptions) progressTimeout() time.Duration {
	if o.ProgressTimeout > 0 {
		return o.ProgressTimeout
	}
	return defaultProgressTimeout
}

// isLoopback reports whether host (with or without a port) names this machine.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (o RegistryOptions) allowHTTP(host string) bool {
	return o.PlainHTTP || isLoopback(host) || slices.Contains(o.InsecureRegistries, host)
}

// registry names reg so that ggcr tries HTTPS and then plain HTTP only
// when our policy allows it (ggcr alone would also fall back for RFC 1918
// addresses, which our policy transport then refuses).
func (o RegistryOptions) registry(repo name.Repository) (name.Registry, error) {
	host := repo.RegistryStr()
	if o.allowHTTP(host) {
		return name.NewRegistry(host, name.Insecure)
	}
	return repo.Registry, nil
}

// newClient performs the auth handshake with repo's registry for pull and
// returns a client whose requests carry the resulting credentials.
func (o RegistryOptions) newClient(ctx context.Context, repo name.Repository) (*http.Client, error) {
	reg, err := o.registry(repo)
	if err != nil {
		return nil, err
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	auth, err := authn.Resolve(ctx, kc, reg)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", reg.RegistryStr(), err)
	}
	base := o.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	authHosts := o.AuthHosts
	if authHosts == nil {
		authHosts = DefaultAuthHosts
	}
	pol := &policy{
		inner:     base,
		registry:  reg.RegistryStr(),
		allowHTTP: o.allowHTTP(reg.RegistryStr()),
		authHosts: authHosts[reg.RegistryStr()],
		hasCreds:  auth != authn.Anonymous,
	}
	scopes := []string{repo.Scope(transport.PullScope)}
	hctx, cancel := context.WithTimeout(ctx, o.progressTimeout())
	defer cancel()
	rt, err := transport.NewWithContext(hctx, reg, auth, pol, scopes)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", reg.RegistryStr(), classify(err))
	}
	return &http.Client{Transport: rt}, nil
}

// policy is the base transport under ggcr's auth transports: it refuses
// plain HTTP to hosts not allowed it and credentials to hosts other than
// the registry.
type policy struct {
	inner     http.RoundTripper
	registry  string
	allowHTTP bool
	authHosts []string
	hasCreds  bool
}

func (p *policy) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if req.URL.Scheme == "http" && !p.allowHTTP {
		return nil, fmt.Errorf("refusing plain HTTP to %s (not loopback; allow it with PlainHTTP or InsecureRegistries): %w", host, errdefs.ErrPermissionDenied)
	}
	if host != p.registry && !slices.Contains(p.authHosts, host) {
		if req.Header.Get("Authorization") != "" || (p.hasCreds && req.Method == http.MethodPost) {
			slog.Warn("content: refused to send registry credentials to another host", "registry", p.registry, "host", host)
			return nil, fmt.Errorf("refusing to send credentials for %s to %s: %w", p.registry, host, errdefs.ErrPermissionDenied)
		}
	}
	return p.inner.RoundTrip(req)
}

// classify maps a ggcr transport error onto errdefs classes.
func classify(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	return fmt.Errorf("%v: %w", err, statusClass(te.StatusCode))
}

func statusClass(code int) error {
	switch {
	case code == http.StatusNotFound:
		return errdefs.ErrNotFound
	case code == http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case code == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case code == http.StatusTooManyRequests || code >= 500:
		return errdefs.ErrUnavailable
	}
	return errdefs.ErrUnknown
}
