// Package reference parses image references. It is a leaf apart from
// content/remote so that a caller that only needs to know what an image is
// called (api/server for diff and get, the controllers for an Image's record
// name) does not link the registry client to do it.
package reference

import (
	"fmt"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
)

// maxLen bounds a reference string before it is parsed: a manifest or an
// API request may carry anything, and the parser's cost grows with it.
const maxLen = 4096

// Parse parses an image reference such as "busybox", "127.0.0.1:5000/a/b:1.0"
// or "registry.example/app@sha256:…". A missing registry is docker.io and a
// missing tag is latest. Malformed references are errdefs.ErrInvalidArgument
// naming the reference; digests must be sha256 in lower-case hex.
func Parse(s string) (name.Reference, error) {
	if s == "" || len(s) > maxLen {
		return nil, fmt.Errorf("image reference of %d bytes: want 1..%d: %w", len(s), maxLen, errdefs.ErrInvalidArgument)
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

// Name is the normalised name of the image s refers to
// ("busybox" → "index.docker.io/library/busybox:latest"): the name its
// image record is kept under.
func Name(s string) (string, error) {
	r, err := Parse(s)
	if err != nil {
		return "", err
	}
	return r.Name(), nil
}
