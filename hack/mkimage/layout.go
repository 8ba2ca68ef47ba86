package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"berth.dev/berth/internal/testimage"
)

const (
	mtLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	pathEnv    = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

func digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// layer is a layer tar with its digests: DiffID of the tar, Digest of the
// gzip stream the layout stores.
type layer struct {
	gz       []byte
	diffID   string
	rawSize  int64
	compSize int64
}

func (l layer) desc() map[string]any {
	return map[string]any{"mediaType": mtLayer, "digest": digest(l.gz), "size": len(l.gz)}
}

// tarEntries writes entries as one layer tar: sorted by path, every mtime
// the epoch, numeric owners only, PAX format, so the same entries always
// give the same bytes.
func tarEntries(entries []testimage.Entry, epoch time.Time) ([]byte, error) {
	sorted := append([]testimage.Entry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range sorted {
		h := &tar.Header{Name: e.Path, Typeflag: e.Type, Mode: unixMode(e.Mode), Uid: e.UID, Gid: e.GID,
			ModTime: epoch, Format: tar.FormatPAX}
		switch e.Type {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			h.Size = int64(len(e.Data))
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.Link
		}
		for _, k := range sortedKeys(e.Xattrs) {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = e.Xattrs[k]
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.Path, err)
		}
		if _, err := io.WriteString(tw, e.Data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// unixMode turns Unix octal mode bits (04755) into the tar header's, which
// archive/tar defines with the same values (c_ISUID = 04000, …).
func unixMode(m int64) int64 { return m & 0o7777 }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// gzipLayer compresses a layer tar with no name and no time in the gzip
// header (gzip -n), so the digest depends on the tar alone.
func gzipLayer(raw []byte) (layer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return layer{}, err
	}
	if _, err := zw.Write(raw); err != nil {
		return layer{}, err
	}
	if err := zw.Close(); err != nil {
		return layer{}, err
	}
	return layer{gz: gz.Bytes(), diffID: digest(raw), rawSize: int64(len(raw)), compSize: int64(gz.Len())}, nil
}

// layout is an OCI image layout being written to dir+".new"; finish moves
// it into place, so a failed build never leaves half a layout under the
// name the tests look for.
type layout struct {
	dir, tmp string
}

func newLayout(dir string) (*layout, error) {
	l := &layout{dir: dir, tmp: dir + ".new"}
	if err := os.RemoveAll(l.tmp); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(l.tmp, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	return l, os.WriteFile(filepath.Join(l.tmp, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// blob stores data and returns its descriptor.
func (l *layout) blob(mediaType string, data []byte) (map[string]any, error) {
	d := digest(data)
	p := filepath.Join(l.tmp, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return nil, err
	}
	return map[string]any{"mediaType": mediaType, "digest": d, "size": len(data)}, nil
}

func (l *layout) json(mediaType string, v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return l.blob(mediaType, b)
}

// image stores the layers, a config and a manifest; it returns the
// manifest's descriptor.
func (l *layout) image(platform map[string]string, cfg map[string]any, history []string, layers []layer, created time.Time) (map[string]any, error) {
	var diffIDs []string
	var descs []any
	var hist []any
	for _, ly := range layers {
		d, err := l.blob(mtLayer, ly.gz)
		if err != nil {
			return nil, err
		}
		descs = append(descs, d)
		diffIDs = append(diffIDs, ly.diffID)
	}
	for _, h := range history {
		hist = append(hist, map[string]any{"created": created, "created_by": h})
	}
	config := map[string]any{"created": created, "os": "linux", "config": cfg,
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}, "history": hist}
	for k, v := range platform {
		config[k] = v
	}
	cd, err := l.json(mtConfig, config)
	if err != nil {
		return nil, err
	}
	return l.json(mtManifest, map[string]any{"schemaVersion": 2, "mediaType": mtManifest, "config": cd, "layers": descs})
}

// finish writes index.json naming desc "latest" and moves the layout into
// place.
func (l *layout) finish(desc map[string]any) error {
	d := map[string]any{}
	for k, v := range desc {
		d[k] = v
	}
	d["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "latest"}
	b, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtIndex, "manifests": []any{d}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.tmp, "index.json"), b, 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return err
	}
	return os.Rename(l.tmp, l.dir)
}
