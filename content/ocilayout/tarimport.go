package ocilayout

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// tarContents is what one pass over an archive leaves: small JSON files in
// memory, every other file already in the store.
type tarContents struct {
	json  map[string][]byte
	files map[string]ocispec.Descriptor // path → blob in the store
	links map[string]string             // path → path it links to
}

// ImportArchive imports an OCI archive or a docker save tarball, plain or
// gzipped, in one streaming pass: blobs go straight into the store while
// the JSON that names them is kept (bounded) until the end.
func ImportArchive(ctx context.Context, s Store, r io.Reader) ([]Image, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	}
	tc, err := readTar(ctx, s, br)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	var images []Image
	switch {
	case tc.json["index.json"] != nil:
		if err := checkLayoutVersion(tc.json[ocispec.ImageLayoutFile]); err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		images, err = imagesFromIndex(tc.json["index.json"])
	case tc.json["manifest.json"] != nil:
		images, err = convertDockerSave(ctx, s, tc)
	default:
		err = fmt.Errorf("neither index.json nor manifest.json found: %w", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := checkComplete(ctx, s, images); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := checkImages(ctx, s, images); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return images, nil
}

// cleanName validates an entry name: relative, no "..", bounded.
func cleanName(name string) (string, error) {
	if len(name) > maxPathLen {
		return "", fmt.Errorf("entry name of %d bytes: %w", len(name), errdefs.ErrInvalidArgument)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("entry %q: absolute path: %w", name, errdefs.ErrInvalidArgument)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("entry %q: path with \"..\": %w", name, errdefs.ErrInvalidArgument)
		}
	}
	return path.Clean(strings.TrimPrefix(name, "./")), nil
}

func readTar(ctx context.Context, s Store, r io.Reader) (*tarContents, error) {
	tc := &tarContents{json: map[string][]byte{}, files: map[string]ocispec.Descriptor{}, links: map[string]string{}}
	tr := tar.NewReader(r)
	jsonTotal := 0
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if n > maxEntries {
			return nil, fmt.Errorf("more than %d entries: %w", maxEntries, errdefs.ErrInvalidArgument)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return tc, nil
		}
		if err != nil {
			return nil, err
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return nil, err
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			// docker save links a layer shared by two images.
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink && !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(name), target)
			}
			if target, err = cleanName(strings.TrimPrefix(target, "/")); err != nil {
				return nil, fmt.Errorf("link %s: %w", name, err)
			}
			tc.links[name] = target
			continue
		case tar.TypeReg:
		default:
			continue
		}
		if hdr.Size < 0 {
			return nil, fmt.Errorf("entry %s: negative size: %w", name, errdefs.ErrInvalidArgument)
		}
		if dir, enc := path.Split(name); dir == "blobs/sha256/" {
			d, err := content.ParseDigest("sha256:" + enc)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", name, err)
			}
			desc, err := writeBlob(ctx, s, ocispec.Descriptor{Digest: d, Size: hdr.Size}, tr)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", name, err)
			}
			tc.files[name] = desc
			continue
		}
		if isMetadata(name) {
			if hdr.Size > maxJSONSize || jsonTotal+int(hdr.Size) > maxJSONTotal {
				return nil, fmt.Errorf("entry %s: %d bytes exceeds the metadata limits: %w", name, hdr.Size, errdefs.ErrFailedPrecondition)
			}
			b, err := readBounded(tr, name)
			if err != nil {
				return nil, err
			}
			jsonTotal += len(b)
			tc.json[name] = b
			continue
		}
		// A docker save layer: hash it on the way in, and remember whether
		// it is gzipped.
		lr := bufio.NewReader(tr)
		mt := ocispec.MediaTypeImageLayer
		if magic, _ := lr.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
			mt = ocispec.MediaTypeImageLayerGzip
		}
		desc, err := writeBlob(ctx, s, ocispec.Descriptor{Size: hdr.Size}, lr)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", name, err)
		}
		desc.MediaType = mt
		tc.files[name] = desc
	}
}

func isMetadata(name string) bool {
	return strings.HasSuffix(name, ".json") || name == ocispec.ImageLayoutFile || name == "repositories"
}

// file finds the blob stored for an archive path, following links.
func (tc *tarContents) file(name string) (ocispec.Descriptor, bool) {
	for range 16 {
		if d, ok := tc.files[name]; ok {
			return d, true
		}
		next, ok := tc.links[name]
		if !ok {
			return ocispec.Descriptor{}, false
		}
		name = next
	}
	return ocispec.Descriptor{}, false
}
