package content

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker schema2 media types, which registries still serve and docker save
// still writes. Their JSON has the same shape as the OCI types.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
)

// MaxChildren bounds the descriptors one manifest or index may list.
const MaxChildren = 1024

// IsManifest reports whether mt is an image manifest (OCI or Docker schema2).
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsIndex reports whether mt is an image index (OCI or Docker manifest list).
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// ManifestMediaTypes are the media types a registry is asked for, in order
// of preference.
var ManifestMediaTypes = []string{
	ocispec.MediaTypeImageIndex,
	ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifestList,
	MediaTypeDockerManifest,
}

// ReadManifest reads and validates the manifest named by desc.
func ReadManifest(ctx context.Context, p Provider, desc ocispec.Descriptor) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if !IsManifest(desc.MediaType) {
		return m, fmt.Errorf("blob %s: media type %q is not an image manifest: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	if err := readJSON(ctx, p, desc, &m); err != nil {
		return m, err
	}
	if len(m.Layers) > MaxChildren {
		return m, fmt.Errorf("manifest %s: %d layers, limit %d: %w", desc.Digest, len(m.Layers), MaxChildren, errdefs.ErrInvalidArgument)
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if err := ValidateDescriptor(d); err != nil {
			return m, fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
	}
	return m, nil
}

// ReadIndex reads and validates the index named by desc.
func ReadIndex(ctx context.Context, p Provider, desc ocispec.Descriptor) (ocispec.Index, error) {
	var idx ocispec.Index
	if !IsIndex(desc.MediaType) {
		return idx, fmt.Errorf("blob %s: media type %q is not an image index: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	if err := readJSON(ctx, p, desc, &idx); err != nil {
		return idx, err
	}
	if len(idx.Manifests) > MaxChildren {
		return idx, fmt.Errorf("index %s: %d manifests, limit %d: %w", desc.Digest, len(idx.Manifests), MaxChildren, errdefs.ErrInvalidArgument)
	}
	for _, d := range idx.Manifests {
		if err := ValidateDescriptor(d); err != nil {
			return idx, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
	}
	return idx, nil
}

func readJSON(ctx context.Context, p Provider, desc ocispec.Descriptor, v any) error {
	b, err := ReadBlob(ctx, p, desc, MaxManifestSize)
	if err != nil {
		return err
	}
	if err := CheckDocument(desc, b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("blob %s (%s): invalid JSON: %v: %w", desc.Digest, desc.MediaType, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Children returns the descriptors desc refers to: the config and layers of
// a manifest, the manifests of an index, nothing for any other media type.
func Children(ctx context.Context, p Provider, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	switch {
	case IsManifest(desc.MediaType):
		m, err := ReadManifest(ctx, p, desc)
		if err != nil {
			return nil, err
		}
		return append([]ocispec.Descriptor{m.Config}, m.Layers...), nil
	case IsIndex(desc.MediaType):
		idx, err := ReadIndex(ctx, p, desc)
		if err != nil {
			return nil, err
		}
		return idx.Manifests, nil
	}
	return nil, nil
}
