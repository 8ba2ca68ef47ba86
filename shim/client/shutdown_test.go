package client_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	shimbundle "berth.dev/berth/shim/bundle"
	"berth.dev/berth/shim/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

// TestClient_ShutdownAnsweredThenClosed is what a shim does when asked to
// exit: it answers Shutdown and closes the connection at once. ttrpc's
// client may then report the call closed although the answer arrived (its
// call picks at random between the answer and the closed connection), and
// Shutdown failed with "ttrpc: closed" (TestShim_ExitStatus, 1 run in
// ~30). The shim closing the connection is the exit asked for: no error.
func TestClient_ShutdownAnsweredThenClosed(t *testing.T) {
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, shimbundle.PidName), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(bundle, shimbundle.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go fakeShim(conn)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 200 {
		c, err := client.Connect(ctx, bundle)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Shutdown(ctx, &shimapi.ShutdownRequest{Now: true}); err != nil {
			t.Fatalf("run %d: Shutdown: %v", i, err)
		}
		c.Close()
	}
	// A call on a connection the caller closed is still an error.
	c, err := client.Connect(ctx, bundle)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Shutdown(ctx, &shimapi.ShutdownRequest{Now: true}); !errdefs.IsUnavailable(err) {
		t.Errorf("Shutdown on a closed client: %v, want unavailable", err)
	}
}

// fakeShim answers Connect with this process's pid and Shutdown with
// nothing, then closes the connection, as an exiting shim does.
func fakeShim(conn net.Conn) {
	defer conn.Close()
	hdr := make([]byte, 10)
	for {
		if _, err := io.ReadFull(conn, hdr); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:4]))
		if _, err := io.ReadFull(conn, body); err != nil {
			return
		}
		var req ttrpc.Request
		if err := proto.Unmarshal(body, &req); err != nil {
			return
		}
		var out proto.Message = &shimapi.ConnectResponse{ShimPid: uint32(os.Getpid())}
		if req.Method == "Shutdown" {
			out = &shimapi.ShutdownRequest{} // an empty message, as Empty is
		}
		payload, _ := proto.Marshal(out)
		p, _ := proto.Marshal(&ttrpc.Response{Payload: payload})
		binary.BigEndian.PutUint32(hdr[:4], uint32(len(p)))
		hdr[8] = 2 // response; the stream id is the request's
		if _, err := conn.Write(append(hdr, p...)); err != nil {
			return
		}
		if req.Method == "Shutdown" {
			return
		}
	}
}
