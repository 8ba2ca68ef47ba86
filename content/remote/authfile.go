package remote

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// maxAuthFile bounds a credentials file read into memory.
const maxAuthFile = 1 << 20

// FileKeychain reads registry credentials from path, a file in docker's
// config.json format ({"auths": {"host": {"auth": base64(user:pass)}}})
// that only its owner may read or write (mode 0600 or stricter). Hosts the
// file does not list fall through to next (nil: anonymous). Errors name
// the file and never quote its content.
func FileKeychain(path string, next authn.Keychain) (authn.Keychain, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", errdefs.ErrNotFound)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("credentials file %s is not a regular file: %w", path, errdefs.ErrInvalidArgument)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("credentials file %s has mode %04o: want 0600 (chmod 600 %s): %w", path, perm, path, errdefs.ErrPermissionDenied)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAuthFile+1))
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	if len(data) > maxAuthFile {
		return nil, fmt.Errorf("credentials file %s exceeds %d bytes: %w", path, maxAuthFile, errdefs.ErrInvalidArgument)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
			RegistryToken string `json:"registrytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		// The decoder's message may quote input: say only where.
		return nil, fmt.Errorf("credentials file %s is not docker config JSON (an object with \"auths\"): %w", path, errdefs.ErrInvalidArgument)
	}
	k := fileKeychain{next: next, auths: map[string]authn.AuthConfig{}}
	for host, a := range cfg.Auths {
		c := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("credentials file %s: auths[%q].auth is not base64 of user:password: %w", path, host, errdefs.ErrInvalidArgument)
			}
			c.Username, c.Password = user, pass
		}
		k.auths[normalizeAuthHost(host)] = c
	}
	return k, nil
}

type fileKeychain struct {
	auths map[string]authn.AuthConfig
	next  authn.Keychain
}

func (k fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if c, ok := k.auths[normalizeAuthHost(r.RegistryStr())]; ok {
		return authn.FromConfig(c), nil
	}
	if k.next == nil {
		return authn.Anonymous, nil
	}
	return k.next.Resolve(r)
}

// normalizeAuthHost maps docker's spellings of a registry ("https://h/v1/",
// "docker.io", "index.docker.io") onto one host[:port].
func normalizeAuthHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "docker.io", "registry-1.docker.io":
		return name.DefaultRegistry
	}
	return h
}
