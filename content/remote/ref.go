package remote

import (
	"fmt"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
)

// maxRefLen bounds a reference string before it is parsed.
const maxRefLen = 4096

// ParseRef parses an image reference such as "busybox", "127.0.0.1:5000/a/b:1.0"
// or "registry.example/app@sha256:…". A missing registry is docker.io and a
// missing tag is latest. Malformed references are errdefs.ErrInvalidArgument
// naming the reference; digests must be sha256 in lower-case hex.
func ParseRef(s string) (name.Reference, error) {
	if s == "" || len(s) > maxRefLen {
		return nil, fmt.Errorf("image reference of %d bytes: want 1..%d: %w", len(s), maxRefLen, errdefs.ErrInvalidArgument)
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
	}
	if d, ok := ref.(name.Digest); ok {
		if _, err := content.ParseDigest(d.DigestStr()); err != nil {
			return nil, fmt.Errorf("image reference %q: %w", s, err)
		}
	}
	return ref, nil
}
