package content

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HostPlatform is the platform this binary runs on, normalized (arm64 has
// variant v8).
func HostPlatform() ocispec.Platform {
	return Normalize(ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH, Variant: hostVariant()})
}

func hostVariant() string {
	if runtime.GOARCH == "arm" {
		return "v7"
	}
	return ""
}

// ParsePlatform parses "os/arch[/variant]" as given to --platform or in
// an Image's spec.platform. Architectures are normalized (x86_64 → amd64,
// aarch64 → arm64, arm64 → arm64/v8).
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return ocispec.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]: %w", s, errdefs.ErrInvalidArgument)
	}
	for _, p := range parts {
		if p == "" || strings.ToLower(p) != p || strings.ContainsAny(p, " \t") {
			return ocispec.Platform{}, fmt.Errorf("platform %q: want lower-case os/arch[/variant]: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return Normalize(p), nil
}

// FormatPlatform is the inverse of ParsePlatform.
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Normalize maps architecture aliases and default variants onto the names
// used in OCI indexes.
func Normalize(p ocispec.Platform) ocispec.Platform {
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	}
	if p.Architecture == "arm64" && (p.Variant == "" || p.Variant == "8") {
		p.Variant = "v8"
	}
	if p.Architecture == "arm" && len(p.Variant) == 1 {
		p.Variant = "v" + p.Variant
	}
	if p.Architecture == "amd64" && p.Variant == "v1" {
		p.Variant = ""
	}
	return p
}

// Matcher decides whether a platform listed in an index will run here.
type Matcher interface {
	Match(ocispec.Platform) bool
}

// NewMatcher matches platforms equal to want after normalization. A want
// without a variant matches any variant.
func NewMatcher(want ocispec.Platform) Matcher {
	return platformMatcher{Normalize(want)}
}

type platformMatcher struct{ want ocispec.Platform }

func (m platformMatcher) Match(p ocispec.Platform) bool {
	p = Normalize(p)
	if p.OS != m.want.OS || p.Architecture != m.want.Architecture {
		return false
	}
	return m.want.Variant == "" || p.Variant == m.want.Variant
}

// SelectManifest picks the first manifest of idx whose platform m matches.
// Entries without a platform (attestations, artifacts) never match. No match
// is errdefs.ErrNotFound naming the platforms the index offers.
func SelectManifest(idx ocispec.Index, m Matcher) (ocispec.Descriptor, error) {
	var offered []string
	for _, d := range idx.Manifests {
		if d.Platform == nil || !(IsManifest(d.MediaType) || IsIndex(d.MediaType)) {
			continue
		}
		if m.Match(*d.Platform) {
			return d, nil
		}
		offered = append(offered, FormatPlatform(*d.Platform))
	}
	return ocispec.Descriptor{}, fmt.Errorf("no manifest for the requested platform (index offers %v): %w", offered, errdefs.ErrNotFound)
}

// ResolveManifest descends from root (a manifest, or an index of them) to the
// manifest for m, reading from p, and returns it with its descriptor.
func ResolveManifest(ctx context.Context, p Provider, root ocispec.Descriptor, m Matcher) (ocispec.Descriptor, ocispec.Manifest, error) {
	desc := root
	for depth := 0; depth <= MaxDepth; depth++ {
		switch {
		case IsManifest(desc.MediaType):
			mf, err := ReadImageManifest(ctx, p, desc)
			return desc, mf, err
		case IsIndex(desc.MediaType):
			idx, err := ReadIndex(ctx, p, desc)
			if err != nil {
				return desc, ocispec.Manifest{}, err
			}
			next, err := SelectManifest(idx, m)
			if err != nil {
				return desc, ocispec.Manifest{}, fmt.Errorf("index %s: %w", desc.Digest, err)
			}
			desc = next
		default:
			return desc, ocispec.Manifest{}, fmt.Errorf("blob %s: media type %q is neither a manifest nor an index: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
		}
	}
	return desc, ocispec.Manifest{}, fmt.Errorf("blob %s: indexes nested deeper than %d: %w", root.Digest, MaxDepth, errdefs.ErrInvalidArgument)
}
