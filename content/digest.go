package content

import (
	"fmt"
	"regexp"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// digestRE is the only digest grammar berth accepts. go-digest's own
// Parse allows other algorithms and upper-case hex; a digest string ends up
// in paths and URLs, so anything looser is refused before it gets there.
var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// ParseDigest parses s strictly as sha256:<64 lower-case hex digits>.
// Anything else is errdefs.ErrInvalidArgument.
func ParseDigest(s string) (digest.Digest, error) {
	if !digestRE.MatchString(s) {
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		return "", fmt.Errorf("digest %q: want sha256:<64 hex>: %w", s, errdefs.ErrInvalidArgument)
	}
	return digest.Digest(s), nil
}

// ValidateDescriptor checks what a path or URL will be built from: the
// digest's grammar and a non-negative size.
func ValidateDescriptor(desc ocispec.Descriptor) error {
	if _, err := ParseDigest(desc.Digest.String()); err != nil {
		return err
	}
	if desc.Size < 0 {
		return fmt.Errorf("descriptor %s: negative size %d: %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}
