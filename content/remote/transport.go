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
	// HostsDir is a containerd-style certs.d directory (see LoadEndpoints);
	// "" uses none: the registry's server over HTTPS.
	HostsDir string
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
	// this long (an idle timeout, per stage and per blob, never a total
	// deadline); 0 is 5 minutes (containerd's image_pull_progress_timeout).
	ProgressTimeout time.Duration
	// Retry says how 429 and 5xx answers are retried.
	Retry RetryPolicy
	// MaxRedirects bounds the redirects one request follows; 0 is 5.
	MaxRedirects int
	// Transport is the base HTTP transport; nil is a clone of
	// http.DefaultTransport. An *http.Transport gets each endpoint's TLS
	// configuration.
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

// newClient performs the auth handshake with endpoint e of repo's
// registry for scopes and returns a client whose
// requests carry the resulting credentials. Credentials are looked up for
// the registry when e is its server and for the mirror's own host when e is
// a mirror: a mirror never gets the upstream's credentials.
func (o RegistryOptions) newClient(ctx context.Context, repo name.Repository, e Endpoint, scopes []string) (*http.Client, error) {
	host := e.Host
	allowHTTP := e.Scheme == "http" || o.allowHTTP(host)
	var nopts []name.Option
	if allowHTTP {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nopts...)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %v: %w", e, err, errdefs.ErrInvalidArgument)
	}
	credsFor := reg
	if !e.Mirror {
		credsFor = repo.Registry
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	auth, err := authn.Resolve(ctx, kc, credsFor)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", credsFor.RegistryStr(), err)
	}
	base := o.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	if t, ok := base.(*http.Transport); ok && e.TLS != nil {
		t = t.Clone()
		t.TLSClientConfig = e.TLS.Clone()
		base = t
	}
	authHosts := o.AuthHosts
	if authHosts == nil {
		authHosts = DefaultAuthHosts
	}
	pol := &policy{
		inner:     base,
		registry:  host,
		allowHTTP: allowHTTP,
		authHosts: authHosts[credsFor.RegistryStr()],
		hasCreds:  auth != authn.Anonymous,
	}
	rt := http.RoundTripper(&retrier{inner: pol, policy: o.Retry, host: host})
	if !e.OverridePath {
		// ggcr pings /v2/ and runs the token dance; a path given as-is
		// has no /v2/ to ping, so it is reached without authentication.
		hctx, cancel := context.WithTimeout(ctx, o.progressTimeout()+o.Retry.maxTotal())
		defer cancel()
		rt, err = transport.NewWithContext(hctx, reg, auth, rt, scopes)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %w", host, classify(err))
		}
	}
	return &http.Client{Transport: rt, CheckRedirect: o.checkRedirect}, nil
}

// checkRedirect bounds redirects and drops credentials when a redirect
// leaves the host (Go keeps them for subdomains; a blob store gets none).
func (o RegistryOptions) checkRedirect(req *http.Request, via []*http.Request) error {
	max := o.MaxRedirects
	if max <= 0 {
		max = 5
	}
	if len(via) > max {
		return fmt.Errorf("stopped after %d redirects (from %s to %s): %w", max, via[0].URL.Host, req.URL.Host, errdefs.ErrUnknown)
	}
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
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
