package layer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

const chunkSize = 1 << 20

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompressor picks a decoder by the stream's magic bytes.
func decompressor(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, chunkSize)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("read layer: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip layer: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd layer: %w", err)
		}
		return zr, zr.Close, nil
	case bytes.HasPrefix(head, []byte("BZh")), bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X'}):
		return nil, nil, fmt.Errorf("layer compression (bzip2/xz) is not supported")
	}
	return br, func() {}, nil
}

// chunk is a piece of the uncompressed stream shared by the hasher and the
// extractor; the last of the two to finish returns it to the pool.
type chunk struct {
	b    []byte
	refs atomic.Int32
}

// pipeline decompresses into chunks on one goroutine and hashes them on
// another, while Read hands them to the tar reader.
type pipeline struct {
	tarCh  chan *chunk
	hashCh chan *chunk
	done   chan struct{}
	pool   sync.Pool
	err    error // set before tarCh is closed
	size   int64 // likewise
	digest chan digest.Digest

	cur *chunk
	off int
}

func startPipeline(src io.Reader, maxSize int64) *pipeline {
	p := &pipeline{
		tarCh:  make(chan *chunk, 8),
		hashCh: make(chan *chunk, 8),
		done:   make(chan struct{}),
		digest: make(chan digest.Digest, 1),
	}
	p.pool.New = func() any { return &chunk{b: make([]byte, chunkSize)} }
	go p.hash(sha256.New())
	go p.decompress(src, maxSize)
	return p
}

func (p *pipeline) decompress(src io.Reader, maxSize int64) {
	defer close(p.tarCh)
	defer close(p.hashCh)
	for {
		c := p.pool.Get().(*chunk)
		c.b = c.b[:chunkSize]
		n, err := io.ReadFull(src, c.b)
		c.b = c.b[:n]
		p.size += int64(n)
		if n > 0 {
			c.refs.Store(2)
			select {
			case p.hashCh <- c:
			case <-p.done:
				return
			}
			select {
			case p.tarCh <- c:
			case <-p.done:
				return
			}
		}
		if maxSize > 0 && p.size > maxSize {
			p.err = fmt.Errorf("layer is larger than %d bytes uncompressed", maxSize)
			return
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		if err != nil {
			p.err = fmt.Errorf("decompress layer: %w", err)
			return
		}
	}
}

func (p *pipeline) release(c *chunk) {
	if c.refs.Add(-1) == 0 {
		p.pool.Put(c)
	}
}

func (p *pipeline) hash(h hash.Hash) {
	for c := range p.hashCh {
		h.Write(c.b)
		p.release(c)
	}
	p.digest <- digest.NewDigest(digest.SHA256, h)
}

// Read implements io.Reader over the uncompressed stream.
func (p *pipeline) Read(b []byte) (int, error) {
	for p.cur == nil || p.off == len(p.cur.b) {
		if p.cur != nil {
			p.release(p.cur)
			p.cur = nil
		}
		c, ok := <-p.tarCh
		if !ok {
			if p.err != nil {
				return 0, p.err
			}
			return 0, io.EOF
		}
		p.cur, p.off = c, 0
	}
	n := copy(b, p.cur.b[p.off:])
	p.off += n
	return n, nil
}

// finish drains the rest of the stream (trailing bytes after the tar's end
// count in the diffID) and returns its digest and size.
func (p *pipeline) finish() (digest.Digest, int64, error) {
	if _, err := io.Copy(io.Discard, p); err != nil {
		p.stop()
		return "", 0, err
	}
	return <-p.digest, p.size, nil
}

// stop abandons the pipeline early.
func (p *pipeline) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	for c := range p.tarCh {
		p.release(c)
	}
}
