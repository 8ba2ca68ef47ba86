package ocilayout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dockerManifest is one entry of a docker save manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// convertDockerSave builds an OCI manifest per manifest.json entry from the
// config and layers already in the store.
func convertDockerSave(ctx context.Context, s Store, tc *tarContents) ([]Image, error) {
	var entries []dockerManifest
	if err := json.Unmarshal(tc.json["manifest.json"], &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if len(entries) > content.MaxChildren {
		return nil, fmt.Errorf("manifest.json: %d entries: %w", len(entries), errdefs.ErrInvalidArgument)
	}
	var images []Image
	for i, e := range entries {
		desc, err := convertOne(ctx, s, tc, e)
		if err != nil {
			return nil, fmt.Errorf("manifest.json entry %d (%v): %w", i, e.RepoTags, err)
		}
		if len(e.RepoTags) == 0 {
			images = append(images, Image{Target: desc})
		}
		for _, tag := range e.RepoTags {
			images = append(images, Image{Name: tag, Target: desc})
		}
	}
	return images, nil
}

func convertOne(ctx context.Context, s Store, tc *tarContents, e dockerManifest) (ocispec.Descriptor, error) {
	name, err := cleanName(e.Config)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var cfgBytes []byte
	if d, ok := tc.file(name); ok {
		d.MediaType = ocispec.MediaTypeImageConfig
		if cfgBytes, err = content.ReadBlob(ctx, s, d, content.MaxManifestSize); err != nil {
			return ocispec.Descriptor{}, err
		}
	} else if cfgBytes = tc.json[name]; cfgBytes == nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s not in the archive: %w", name, errdefs.ErrNotFound)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	if len(e.Layers) != len(cfg.RootFS.DiffIDs) || len(e.Layers) > content.MaxChildren {
		return ocispec.Descriptor{}, fmt.Errorf("%d layers, config lists %d diff IDs: %w", len(e.Layers), len(cfg.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}
	config, err := writeBlob(ctx, s, ocispec.Descriptor{Digest: digestOf(cfgBytes), Size: int64(len(cfgBytes))}, bytes.NewReader(cfgBytes))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %w", name, err)
	}
	config.MediaType = ocispec.MediaTypeImageConfig
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    make([]ocispec.Descriptor, 0, len(e.Layers)),
	}
	for i, l := range e.Layers {
		ln, err := cleanName(l)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		d, ok := tc.file(ln)
		if !ok {
			return ocispec.Descriptor{}, fmt.Errorf("layer %s not in the archive: %w", ln, errdefs.ErrNotFound)
		}
		if d.MediaType == "" {
			// Stored under blobs/: docker 25+ writes uncompressed tars there.
			d.MediaType = ocispec.MediaTypeImageLayer
		}
		// An uncompressed layer's digest is its diff ID: check the
		// config agrees before naming anything after it.
		if d.MediaType == ocispec.MediaTypeImageLayer && d.Digest != cfg.RootFS.DiffIDs[i] {
			return ocispec.Descriptor{}, fmt.Errorf("layer %s hashes to %s, config says diff ID %s: %w", ln, d.Digest, cfg.RootFS.DiffIDs[i], errdefs.ErrFailedPrecondition)
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.SHA256.FromBytes(mb), Size: int64(len(mb))}
	if _, err := writeBlob(ctx, s, desc, bytes.NewReader(mb)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	if p := cfg.Platform; p.OS != "" {
		desc.Platform = &ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
	}
	return desc, nil
}
