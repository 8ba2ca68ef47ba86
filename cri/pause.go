package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	"berth.dev/berth/node"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	specsv "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// builtinPauseName is the record name of the pause image berth builds
// itself from its berth-pause binary when the configured sandbox image is
// absent and cannot be pulled.
const builtinPauseName = "berth.local/pause:builtin"

// sandboxPullTimeout bounds the pull of the configured sandbox image at a
// pod's start; sandboxPullBackoff is how long a failed pull is not tried
// again (an offline node would pay the timeout on every pod otherwise).
const (
	sandboxPullTimeout = 20 * time.Second
	sandboxPullBackoff = 5 * time.Minute
)

type sandboxImage struct {
	mu       sync.Mutex
	failedAt time.Time
	pulling  bool
}

// sandboxImageName is the image record a new sandbox runs: the configured
// sandbox image when it is on the node, else berth's built-in pause. A pod
// never waits for a registry: while the configured image is absent, berthd
// pulls it in the background (not again for sandboxPullBackoff after a
// failure) and pods run the built-in pause meanwhile, as an offline node
// always does.
func (s *Service) sandboxImageName(ctx context.Context) (string, error) {
	if im, err := s.resolveImage(ctx, s.opts.SandboxImage); err == nil {
		return im.records[0].Name, nil
	}
	s.pullSandboxImage()
	s.pause.mu.Lock()
	defer s.pause.mu.Unlock()
	if im, err := s.resolveImage(ctx, builtinPauseName); err == nil {
		return im.records[0].Name, nil
	}
	if err := s.importBuiltinPause(ctx); err != nil {
		return "", err
	}
	return builtinPauseName, nil
}

// pullSandboxImage starts a background pull of the configured sandbox
// image unless one runs or one failed within sandboxPullBackoff.
func (s *Service) pullSandboxImage() {
	s.pause.mu.Lock()
	defer s.pause.mu.Unlock()
	if s.pause.pulling || time.Since(s.pause.failedAt) < sandboxPullBackoff {
		return
	}
	s.pause.pulling = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), sandboxPullTimeout)
		defer cancel()
		_, err := s.node.Pull(ctx, Namespace, s.opts.SandboxImage, node.PullOptions{Unpack: true})
		s.pause.mu.Lock()
		defer s.pause.mu.Unlock()
		s.pause.pulling = false
		if err != nil {
			s.pause.failedAt = time.Now()
			s.log.Warn("sandbox image cannot be pulled; pods run berth's built-in pause", "image", s.opts.SandboxImage, "err", err)
			return
		}
		s.log.Info("sandbox image pulled", "image", s.opts.SandboxImage)
	}()
}

// warmSandboxImage readies the sandbox image at the CRI's first call, so
// the first pod pays neither the pull nor the built-in image's packaging.
func (s *Service) warmSandboxImage(ctx context.Context) {
	if _, err := s.opts.DB.EnsureNamespace(ctx, Namespace); err != nil {
		s.log.Warn("cri namespace", "err", err)
		return
	}
	if _, err := s.sandboxImageName(ctx); err != nil {
		s.log.Warn("sandbox image", "err", err)
	}
}

// importBuiltinPause packages the berth-pause binary as a one-layer image
// (an OCI layout in a temporary directory, byte for byte the same on every
// node for the same binary) and imports it.
func (s *Service) importBuiltinPause(ctx context.Context) error {
	if s.opts.PauseBinary == "" {
		return fmt.Errorf("sandbox image %s is not on the node and berth-pause was not found: %w", s.opts.SandboxImage, errdefs.ErrNotFound)
	}
	bin, err := os.ReadFile(s.opts.PauseBinary)
	if err != nil {
		return fmt.Errorf("built-in pause: %w", err)
	}
	if err := os.MkdirAll(s.opts.TempDir, 0o700); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(s.opts.TempDir, "pause-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := writePauseLayout(dir, bin); err != nil {
		return fmt.Errorf("built-in pause: %w", err)
	}
	if _, err := s.node.Import(ctx, Namespace, dir, node.ImportOptions{Name: builtinPauseName, Unpack: true}); err != nil {
		return fmt.Errorf("built-in pause: %w", err)
	}
	s.log.Info("built-in pause image imported", "name", builtinPauseName, "binary", s.opts.PauseBinary)
	return nil
}

// writePauseLayout writes an OCI image layout holding /pause.
func writePauseLayout(dir string, bin []byte) error {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerDesc, err := writeBlob(dir, ocispec.MediaTypeImageLayer, layer.Bytes())
	if err != nil {
		return err
	}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH},
		Config:   ocispec.ImageConfig{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgDesc, err := writeBlob(dir, ocispec.MediaTypeImageConfig, cb)
	if err != nil {
		return err
	}
	m := ocispec.Manifest{Versioned: specsv.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{layerDesc}}
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	mDesc, err := writeBlob(dir, ocispec.MediaTypeImageManifest, mb)
	if err != nil {
		return err
	}
	mDesc.Annotations = map[string]string{ocispec.AnnotationRefName: builtinPauseName}
	mDesc.Platform = &cfg.Platform
	idx := ocispec.Index{Versioned: specsv.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{mDesc}}
	ib, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600)
}

func writeBlob(dir, mediaType string, b []byte) (ocispec.Descriptor, error) {
	d := digest.FromBytes(b)
	p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}, nil
}
