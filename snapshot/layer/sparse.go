package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"
)

// isSparse reports a GNU sparse entry, old-style (type 'S') or in PAX
// records (formats 0.0, 0.1 and 1.0).
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// holeBlock is the granularity at which zeros become holes: a filesystem
// block multiple, small enough to keep the holes a sparse map describes.
const holeBlock = 64 << 10

var zeroBlock = make([]byte, holeBlock)

// writeSparse copies a sparse entry's data to fd, leaving every all-zero
// block as a hole, and sets the file's size. archive/tar expands a
// sparse map into zeros on Read (it exports no map); writing those zeros
// would turn a declared terabyte into a terabyte on disk.
func (a *applier) writeSparse(fd int, r io.Reader, size int64) error {
	var off int64
	for {
		n, rerr := io.ReadFull(r, a.buf)
		b := a.buf[:n]
		for len(b) > 0 {
			blk := b[:min(len(b), holeBlock)]
			if bytes.Equal(blk, zeroBlock[:len(blk)]) {
				off += int64(len(blk))
				b = b[len(blk):]
				continue
			}
			// Coalesce the run of data blocks into one write.
			end := len(blk)
			for end < len(b) {
				nb := b[end:min(len(b), end+holeBlock)]
				if bytes.Equal(nb, zeroBlock[:len(nb)]) {
					break
				}
				end += len(nb)
			}
			if err := pwriteAll(fd, b[:end], off); err != nil {
				return err
			}
			if err := a.wrote(end); err != nil {
				return err
			}
			off += int64(end)
			b = b[end:]
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if off != size {
		return fmt.Errorf("sparse entry holds %d bytes, header says %d", off, size)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	return nil
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return noSpace(err)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
