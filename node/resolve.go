package node

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"

	"berth.dev/berth/content/remote"
)

// ResolveDigest asks the registry which digest ref names now (one manifest
// request, nothing fetched), with the credentials of authFile (a docker
// config, may be empty) before berthd's own: how an Image's updatePolicy
// learns that its tag moved.
func (n *Node) ResolveDigest(ctx context.Context, ref, authFile string) (string, error) {
	r, err := remote.ParseRef(ref)
	if err != nil {
		return "", err
	}
	regOpts := n.registryOptions(false)
	if authFile != "" {
		if regOpts.Keychain, err = remote.FileKeychain(authFile, authn.DefaultKeychain); err != nil {
			return "", fmt.Errorf("resolve %s: %w", r, err)
		}
	}
	repo, err := remote.NewRepository(ctx, r, regOpts)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", r, err)
	}
	root, err := repo.Resolve(ctx)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", r, err)
	}
	return root.Digest.String(), nil
}
