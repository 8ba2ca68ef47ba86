package cri

import (
	"encoding/base64"
	"fmt"
	"strings"

	"berth.dev/berth/content/remote"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// requestKeychain hands the credentials of one PullImage request to the
// one registry they are for, and to no other: a mirror or a redirect to
// another host never sees the kubelet's pull secret.
type requestKeychain struct {
	registry string
	auth     authn.AuthConfig
}

func (k requestKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() != k.registry {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(k.auth), nil
}

// keychainFor turns the request's AuthConfig into a keychain for ref's
// registry (or the registry ServerAddress names, as the kubelet sends it:
// "https://host/v1/" for docker.io).
func keychainFor(ref string, a *runtime.AuthConfig) (authn.Keychain, error) {
	r, err := remote.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	registry := r.Context().RegistryStr()
	if sa := a.GetServerAddress(); sa != "" {
		h := strings.TrimPrefix(strings.TrimPrefix(sa, "https://"), "http://")
		h, _, _ = strings.Cut(h, "/")
		if h == "docker.io" || h == "index.docker.io" || h == "registry-1.docker.io" {
			h = "index.docker.io"
		}
		registry = h
	}
	ac := authn.AuthConfig{Username: a.GetUsername(), Password: a.GetPassword(), IdentityToken: a.GetIdentityToken(), RegistryToken: a.GetRegistryToken()}
	if a.GetAuth() != "" && ac.Username == "" {
		raw, err := base64.StdEncoding.DecodeString(a.GetAuth())
		if err != nil {
			return nil, fmt.Errorf("pull %s: auth is not base64: %w", ref, errdefs.ErrInvalidArgument)
		}
		u, p, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, fmt.Errorf("pull %s: auth is not user:password: %w", ref, errdefs.ErrInvalidArgument)
		}
		ac.Username, ac.Password = u, p
	}
	return requestKeychain{registry: registry, auth: ac}, nil
}
