package content

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker layer media types beyond the schema2 tar.gzip: a foreign layer is
// Docker's name for a non-distributable one (Windows base layers).
const (
	MediaTypeDockerForeignLayerGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// layerTypes are the layer media types a runtime knows how to unpack: tar,
// tar+gzip and tar+zstd, and their non-distributable variants. Anything
// else (an artifact, a Helm chart, a hostile text/html) is not a root
// filesystem, and unpacking it as one would be a guess.
var layerTypes = map[string]bool{
	ocispec.MediaTypeImageLayer:     true,
	ocispec.MediaTypeImageLayerGzip: true,
	ocispec.MediaTypeImageLayerZstd: true,
	// Deprecated in image-spec 1.1 (so spelled out here), still served.
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": true,
	MediaTypeDockerLayerGzip:        true,
	MediaTypeDockerForeignLayerGzip: true,
	// Kept because berth has always read it: the uncompressed schema2 form.
	MediaTypeDockerLayer: true,
}

// IsLayer reports whether mt is a layer media type berth unpacks.
func IsLayer(mt string) bool { return layerTypes[mt] }

// IsConfig reports whether mt is an image config (OCI or Docker).
func IsConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}

// ReadImageManifest reads the manifest of an image that is to be run: one
// ReadManifest accepts whose config and layers are also of media types a
// runtime knows. Pull, unpack, image records and import use it, so all of
// them refuse the same images before a layer is fetched or unpacked.
// Walks over the store (GC, leases, export) use ReadManifest alone: an
// index may hold manifests that are not images (attestations, artifacts),
// and they must still be kept and copied, just never run.
func ReadImageManifest(ctx context.Context, p Provider, desc ocispec.Descriptor) (ocispec.Manifest, error) {
	m, err := ReadManifest(ctx, p, desc)
	if err != nil {
		return m, err
	}
	return m, CheckImage(desc, m)
}

// CheckImage refuses a manifest whose config or layers are not of a media
// type a runtime knows, naming the media type and the descriptor.
func CheckImage(mdesc ocispec.Descriptor, m ocispec.Manifest) error {
	if !IsConfig(m.Config.MediaType) {
		return fmt.Errorf("manifest %s: config %s: media type %q is not an image config: %w", mdesc.Digest, m.Config.Digest, m.Config.MediaType, errdefs.ErrNotImplemented)
	}
	for i, l := range m.Layers {
		if !IsLayer(l.MediaType) {
			return fmt.Errorf("manifest %s: layer %d (%s): media type %q is not a known layer type: %w", mdesc.Digest, i, l.Digest, l.MediaType, errdefs.ErrNotImplemented)
		}
	}
	return nil
}

// CheckDocument refuses a manifest or index body that could be read as the
// other (CVE-2021-41190: one digest, two meanings to two clients), and one
// whose mediaType field disagrees with the media type it was named or
// served with (desc.MediaType: a registry's Content-Type, or the parent
// index's descriptor). An absent mediaType field is allowed, as OCI does.
func CheckDocument(desc ocispec.Descriptor, b []byte) error {
	var v struct {
		MediaType string          `json:"mediaType"`
		Config    json.RawMessage `json:"config"`
		Layers    json.RawMessage `json:"layers"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("blob %s (%s): invalid JSON: %v: %w", desc.Digest, desc.MediaType, err, errdefs.ErrInvalidArgument)
	}
	if v.Manifests != nil && (v.Layers != nil || v.Config != nil) {
		return fmt.Errorf("blob %s: ambiguous document carries both manifests and layers/config: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	if IsManifest(desc.MediaType) && v.Manifests != nil {
		return fmt.Errorf("manifest %s: carries a manifests field: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	if IsIndex(desc.MediaType) && (v.Layers != nil || v.Config != nil) {
		return fmt.Errorf("index %s: carries a layers or config field: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	if v.MediaType != "" && v.MediaType != desc.MediaType {
		return fmt.Errorf("blob %s: body says media type %q, served as %q: %w", desc.Digest, v.MediaType, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	return nil
}
