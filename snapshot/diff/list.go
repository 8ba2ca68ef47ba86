package diff

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// List describes the entries of a layer (gzip, zstd or plain tar), one a
// line in tar order: "D path" for a deletion, "O dir" for an opaque
// directory, else the entry's type letter, mode and name ("f 644 etc/x",
// "l 777 bin/sh -> busybox", "h 644 b => a").
func List(r io.Reader) ([]string, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	var src io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		src = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		src = zr
	}
	tr := tar.NewReader(src)
	var out []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		dir, base := path.Split(strings.TrimSuffix(hdr.Name, "/"))
		switch {
		case base == opaqueMarker:
			out = append(out, "O "+strings.TrimSuffix(dir, "/"))
			continue
		case strings.HasPrefix(base, whiteoutPrefix):
			out = append(out, "D "+dir+strings.TrimPrefix(base, whiteoutPrefix))
			continue
		}
		line := fmt.Sprintf("%c %o %s", typeLetter(hdr.Typeflag), hdr.Mode&0o7777, strings.TrimSuffix(hdr.Name, "/"))
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			line += " -> " + hdr.Linkname
		case tar.TypeLink:
			line += " => " + hdr.Linkname
		case tar.TypeChar, tar.TypeBlock:
			line += fmt.Sprintf(" %d,%d", hdr.Devmajor, hdr.Devminor)
		}
		out = append(out, line)
	}
}

func typeLetter(t byte) byte {
	switch t {
	case tar.TypeDir:
		return 'd'
	case tar.TypeSymlink:
		return 'l'
	case tar.TypeLink:
		return 'h'
	case tar.TypeChar:
		return 'c'
	case tar.TypeBlock:
		return 'b'
	case tar.TypeFifo:
		return 'p'
	}
	return 'f'
}
