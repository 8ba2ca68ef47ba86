package shim

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"

	"github.com/containerd/ttrpc"
)

// connTracker knows, for every connection the shim serves, how many
// requests it has read and how many answers it has written, so the shim
// exits only once each request it took has its answer on the wire.
//
// ttrpc's Server.Shutdown cannot tell: a connection's idle/active state is
// refreshed only after it writes a response, so a connection whose first
// request is being handled still counts as idle and is closed under it.
// The Shutdown call that makes the shim exit is such a request: its answer
// was lost about once in thirty, and the client saw "ttrpc: closed".
type connTracker struct {
	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	changed chan struct{} // a request was answered or a connection closed
}

func newConnTracker() *connTracker {
	return &connTracker{conns: map[*trackedConn]struct{}{}, changed: make(chan struct{}, 1)}
}

// handshaker runs h, then tracks the connection it approves.
func (t *connTracker) handshaker(h ttrpc.Handshaker) ttrpc.Handshaker {
	return handshakeFunc(func(ctx context.Context, conn net.Conn) (net.Conn, any, error) {
		c, info, err := h.Handshake(ctx, conn)
		if err != nil {
			return c, info, err
		}
		tc := &trackedConn{Conn: c, t: t}
		t.mu.Lock()
		t.conns[tc] = struct{}{}
		t.mu.Unlock()
		return tc, info, nil
	})
}

type handshakeFunc func(ctx context.Context, conn net.Conn) (net.Conn, any, error)

func (f handshakeFunc) Handshake(ctx context.Context, conn net.Conn) (net.Conn, any, error) {
	return f(ctx, conn)
}

func (t *connTracker) notify() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// idle reports whether every request read so far has been answered.
func (t *connTracker) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		if c.answered.Load() < c.asked.Load() {
			return false
		}
	}
	return true
}

// drain waits until every request read so far is answered or its
// connection closed, or until ctx ends.
func (t *connTracker) drain(ctx context.Context) error {
	for !t.idle() {
		select {
		case <-t.changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// trackedConn counts the ttrpc frames read and written on a connection.
// ttrpc reads a connection from one goroutine and writes it from another,
// so each direction's frame state has one user.
type trackedConn struct {
	net.Conn
	t               *connTracker
	in, out         frames
	asked, answered atomic.Int64
	closeOnce       sync.Once
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.feed(b[:n], func(typ byte) {
		if typ == frameRequest {
			c.asked.Add(1)
		}
	})
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.feed(b[:n], func(typ byte) {
		// The Task API has no streams: each request has one response.
		if typ == frameResponse {
			c.answered.Add(1)
			c.t.notify()
		}
	})
	return n, err
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
		c.t.notify()
	})
	return c.Conn.Close()
}

// The ttrpc wire format: each frame is a 10-byte header (payload length
// uint32, stream id uint32, type, flags; big-endian) and its payload.
const (
	frameHeaderLen = 10
	frameRequest   = 0x1
	frameResponse  = 0x2
)

// frames follows the frame boundaries in one direction of a byte stream.
type frames struct {
	hdr  [frameHeaderLen]byte
	n    int    // header bytes seen of the current frame
	left uint32 // its payload bytes still to come
}

// feed consumes the next bytes of the stream and calls done with the type
// of each frame whose last byte is among them.
func (f *frames) feed(b []byte, done func(typ byte)) {
	for len(b) > 0 {
		if f.n < frameHeaderLen {
			k := copy(f.hdr[f.n:], b)
			f.n, b = f.n+k, b[k:]
			if f.n < frameHeaderLen {
				return
			}
			f.left = binary.BigEndian.Uint32(f.hdr[:4])
		} else {
			k := uint32(len(b))
			if k > f.left {
				k = f.left
			}
			f.left, b = f.left-k, b[k:]
		}
		if f.left == 0 {
			done(f.hdr[8])
			f.n = 0
		}
	}
}
