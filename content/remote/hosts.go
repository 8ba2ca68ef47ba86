package remote

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultHostsDir is where berthd looks for containerd-style registry host
// directories (<host[:port]>/hosts.toml, _default/hosts.toml, *.crt,
// *.cert/*.key).
const DefaultHostsDir = "/etc/berth/certs.d"

// Capability is what an endpoint may be used for (hosts.toml's capabilities).
type Capability uint8

const (
	CapPull    Capability = 1 << iota // fetch blobs and manifests by digest
	CapResolve                        // turn a tag into a digest
	CapPush                           // upload
)

const capAll = CapPull | CapResolve | CapPush

// Endpoint is one place a registry's repositories can be reached: a mirror
// from hosts.toml, or the registry's server itself (always last).
type Endpoint struct {
	// Scheme is https or http (plain HTTP only when the config says so).
	Scheme string
	// Host is host[:port] as dialed.
	Host string
	// Path is the API root, "/v2" unless hosts.toml's override_path set
	// another.
	Path string
	// OverridePath says Path was given as-is (no /v2 ping there).
	OverridePath bool
	Capabilities Capability
	// TLS is the client TLS configuration; nil is the system's.
	TLS *tls.Config
	// Header is sent with every request to this endpoint.
	Header http.Header
	// Mirror is set for every endpoint but the server: requests carry
	// ns=<registry> so a shared mirror knows which upstream is meant.
	Mirror bool

	base string // the URL's path, before /v2
}

// String names the endpoint in errors and logs (never with credentials).
func (e Endpoint) String() string { return e.Scheme + "://" + e.Host + e.Path }

// hostsFile is hosts.toml.
type hostsFile struct {
	Server       string              `toml:"server"`
	Capabilities []string            `toml:"capabilities"`
	CA           any                 `toml:"ca"`
	Client       any                 `toml:"client"`
	SkipVerify   *bool               `toml:"skip_verify"`
	OverridePath bool                `toml:"override_path"`
	Header       map[string]any      `toml:"header"`
	Host         map[string]hostFile `toml:"host"`
}

type hostFile struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`
	Client       any            `toml:"client"`
	SkipVerify   *bool          `toml:"skip_verify"`
	OverridePath bool           `toml:"override_path"`
	Header       map[string]any `toml:"header"`
}

// hostsDirName is the directory name for a registry: docker.io for Docker
// Hub (whatever ggcr calls it), host:port otherwise.
func hostsDirName(registry string) string {
	if registry == name.DefaultRegistry || registry == "registry-1.docker.io" {
		return "docker.io"
	}
	return registry
}

// defaultServer is where a registry's server is when hosts.toml names none.
func defaultServer(registry string) string {
	if hostsDirName(registry) == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + registry
}

// LoadEndpoints reads dir's configuration for registry (host[:port]) and
// returns the endpoints to try, mirrors first in file order, the server
// last. dir/<registry>/ is used when it exists, else dir/_default/; a
// directory without hosts.toml is the docker layout (certificates only).
// An empty dir or none of these is just the server over HTTPS. A broken
// file is an error naming it (and the key); it concerns this registry only.
func LoadEndpoints(dir, registry string) ([]Endpoint, error) {
	server := Endpoint{Capabilities: capAll}
	if err := server.setURL(defaultServer(registry)); err != nil {
		return nil, err
	}
	if dir == "" {
		return []Endpoint{server}, nil
	}
	hdir := ""
	for _, d := range []string{hostsDirName(registry), "_default"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err == nil && fi.IsDir() {
			hdir = filepath.Join(dir, d)
			break
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("registry config %s: %w", filepath.Join(dir, d), err)
		}
	}
	if hdir == "" {
		return []Endpoint{server}, nil
	}
	// Certificates beside hosts.toml (docker's layout) apply to the server.
	if err := dirCerts(hdir, &server); err != nil {
		return nil, err
	}
	file := filepath.Join(hdir, "hosts.toml")
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return []Endpoint{server}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry config: %w", err)
	}
	var hf hostsFile
	md, err := toml.Decode(string(data), &hf)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("registry config %s: line %d: %s: %w", file, pe.Position.Line, pe.Message, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("registry config %s: %v: %w", file, err, errdefs.ErrInvalidArgument)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("registry config %s: unknown key %q: %w", file, und[0].String(), errdefs.ErrInvalidArgument)
	}
	bad := func(key string, err error) error {
		return fmt.Errorf("registry config %s: %s: %v: %w", file, key, err, errdefs.ErrInvalidArgument)
	}
	if hf.Server != "" {
		if err := server.setURL(hf.Server); err != nil {
			return nil, bad("server", err)
		}
	}
	top := hostFile{Capabilities: hf.Capabilities, CA: hf.CA, Client: hf.Client, SkipVerify: hf.SkipVerify, OverridePath: hf.OverridePath, Header: hf.Header}
	if err := top.apply(hdir, &server, "", bad); err != nil {
		return nil, err
	}
	// Mirrors in the order the file lists them.
	var mirrors []Endpoint
	for _, k := range tableOrder(md, "host") {
		h := hf.Host[k]
		key := fmt.Sprintf("host.%q", k)
		e := Endpoint{Capabilities: capAll, Mirror: true}
		if err := e.setURL(k); err != nil {
			return nil, bad(key, err)
		}
		if err := h.apply(hdir, &e, key+".", bad); err != nil {
			return nil, err
		}
		// The server itself listed as a host is the server, not a mirror.
		if e.Host == server.Host && e.Scheme == server.Scheme && e.Path == server.Path {
			server = e
			server.Mirror = false
			continue
		}
		mirrors = append(mirrors, e)
	}
	return append(mirrors, server), nil
}

// tableOrder lists the sub-tables of key in the order the file has them.
func tableOrder(md toml.MetaData, key string) []string {
	var out []string
	for _, k := range md.Keys() {
		if len(k) == 2 && k[0] == key && !slices.Contains(out, k[1]) {
			out = append(out, k[1])
		}
	}
	return out
}

func (e *Endpoint) setURL(s string) error {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("scheme %q: want https or http", u.Scheme)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want scheme://host[:port][/path]", s)
	}
	e.Scheme, e.Host = u.Scheme, u.Host
	e.base = strings.TrimSuffix(u.Path, "/")
	e.Path = path.Join("/", e.base, "v2")
	return nil
}

func (h hostFile) apply(dir string, e *Endpoint, prefix string, bad func(string, error) error) error {
	if h.Capabilities != nil {
		e.Capabilities = 0
		for _, c := range h.Capabilities {
			switch c {
			case "pull":
				e.Capabilities |= CapPull
			case "resolve":
				e.Capabilities |= CapResolve
			case "push":
				e.Capabilities |= CapPush
			default:
				return bad(prefix+"capabilities", fmt.Errorf("%q: want pull, resolve or push", c))
			}
		}
	}
	// containerd: the API root is /v2 under the host's path, or the path
	// itself with override_path.
	e.OverridePath = h.OverridePath
	if e.OverridePath {
		e.Path = e.base
	}
	cas, err := stringList(h.CA)
	if err != nil {
		return bad(prefix+"ca", err)
	}
	for _, ca := range cas {
		if err := addCA(e, resolvePath(dir, ca)); err != nil {
			return bad(prefix+"ca", err)
		}
	}
	pairs, err := clientPairs(h.Client)
	if err != nil {
		return bad(prefix+"client", err)
	}
	for _, p := range pairs {
		if err := addClientCert(e, resolvePath(dir, p[0]), resolvePath(dir, p[1])); err != nil {
			return bad(prefix+"client", err)
		}
	}
	if h.SkipVerify != nil && *h.SkipVerify {
		tlsOf(e).InsecureSkipVerify = true
	}
	keys := make([]string, 0, len(h.Header))
	for k := range h.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs, err := stringList(h.Header[k])
		if err != nil {
			return bad(prefix+"header."+k, err)
		}
		if e.Header == nil {
			e.Header = http.Header{}
		}
		for _, v := range vs {
			e.Header.Add(k, v)
		}
	}
	return nil
}

func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// stringList accepts a string or an array of strings.
func stringList(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("want a string or a list of strings, got %T in the list", x)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got %T", v)
}

// clientPairs accepts "cert" (key beside it as containerd does not guess:
// the cert file then holds the key too), ["cert", "key"] or
// [["cert", "key"], ...].
func clientPairs(v any) ([][2]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return [][2]string{{v, v}}, nil
	case []any:
		if len(v) == 0 {
			return nil, nil
		}
		if _, ok := v[0].(string); ok {
			s, err := stringList(v)
			if err != nil {
				return nil, err
			}
			if len(s) != 2 {
				return nil, fmt.Errorf("want [cert, key], got %d strings", len(s))
			}
			return [][2]string{{s[0], s[1]}}, nil
		}
		var out [][2]string
		for _, x := range v {
			s, err := stringList(x)
			if err != nil || len(s) != 2 {
				return nil, fmt.Errorf("want a list of [cert, key] pairs")
			}
			out = append(out, [2]string{s[0], s[1]})
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a cert path, [cert, key] or [[cert, key], ...], got %T", v)
}

func tlsOf(e *Endpoint) *tls.Config {
	if e.TLS == nil {
		e.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return e.TLS
}

func addCA(e *Endpoint, file string) error {
	pem, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	c := tlsOf(e)
	if c.RootCAs == nil {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		c.RootCAs = pool
	}
	if !c.RootCAs.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return nil
}

func addClientCert(e *Endpoint, certFile, keyFile string) error {
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("client certificate %s, key %s: %w", certFile, keyFile, err)
	}
	c := tlsOf(e)
	c.Certificates = append(c.Certificates, kp)
	return nil
}

// dirCerts applies docker's layout: every *.crt is a CA, every *.cert
// with a *.key of the same stem a client certificate.
func dirCerts(dir string, e *Endpoint) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("registry config: %w", err)
	}
	for _, de := range ents {
		n := de.Name()
		switch filepath.Ext(n) {
		case ".crt":
			if err := addCA(e, filepath.Join(dir, n)); err != nil {
				return fmt.Errorf("registry config %s: %v: %w", filepath.Join(dir, n), err, errdefs.ErrInvalidArgument)
			}
		case ".cert":
			key := filepath.Join(dir, strings.TrimSuffix(n, ".cert")+".key")
			if _, err := os.Stat(key); err != nil {
				return fmt.Errorf("registry config %s: client certificate without %s: %w", filepath.Join(dir, n), key, errdefs.ErrInvalidArgument)
			}
			if err := addClientCert(e, filepath.Join(dir, n), key); err != nil {
				return fmt.Errorf("registry config: %v: %w", err, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}
