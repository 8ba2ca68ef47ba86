package shim

import (
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

// TestServe_ShutdownAnswered is the shim's exit path over a real socket:
// the Shutdown call that makes the shim exit has its answer written
// before the shim closes the connection, every time. The shim used to stop
// its ttrpc server as soon as Shutdown returned, and the server, counting
// the connection idle while its request was being handled, closed it
// before the answer went out (1 run in ~30 of TestShim_ExitStatus failed
// so). The client here reads the wire itself: ttrpc's own client may
// report a call closed when the answer and the close arrive together.
func TestServe_ShutdownAnswered(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	for i := range 300 {
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		svc := &Service{log: quietLog(), done: make(chan struct{})}
		served := make(chan error, 1)
		go func() { served <- serveUntilDone(quietLog(), l, svc, func() {}) }()
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		st, err := rawCall(conn, "Shutdown", &shimapi.ShutdownRequest{Now: i%2 == 0})
		if err != nil || st.GetCode() != 0 {
			t.Fatalf("run %d: Shutdown: status %v, err %v", i, st, err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("run %d: serve: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: still serving 10s after Shutdown", i)
		}
		conn.Close()
	}
}

// rawCall sends one ttrpc request frame for a Task method and reads the
// response frame.
func rawCall(conn net.Conn, method string, req proto.Message) (interface{ GetCode() int32 }, error) {
	payload, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	p, err := proto.Marshal(&ttrpc.Request{Service: "berth.shim.v1.Task", Method: method, Payload: payload})
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, frameHeaderLen)
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(p)))
	binary.BigEndian.PutUint32(hdr[4:8], 1)
	hdr[8] = frameRequest
	if _, err := conn.Write(append(hdr, p...)); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:4]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, err
	}
	var resp ttrpc.Response
	if err := proto.Unmarshal(body, &resp); err != nil {
		return nil, err
	}
	return resp.GetStatus(), nil
}

func TestFrames(t *testing.T) {
	frame := func(typ byte, n int) []byte {
		b := make([]byte, frameHeaderLen+n)
		binary.BigEndian.PutUint32(b[:4], uint32(n))
		b[8] = typ
		return b
	}
	var stream []byte
	stream = append(stream, frame(frameRequest, 5)...)
	stream = append(stream, frame(frameResponse, 0)...)
	stream = append(stream, frame(frameRequest, 300)...)
	stream = append(stream, frame(3, 1)...)
	want := []byte{frameRequest, frameResponse, frameRequest, 3}
	for _, chunk := range []int{1, 3, 9, 10, 11, 64, len(stream)} {
		var f frames
		var got []byte
		for b := stream; len(b) > 0; {
			k := min(chunk, len(b))
			f.feed(b[:k], func(typ byte) { got = append(got, typ) })
			b = b[k:]
		}
		if string(got) != string(want) || f.n != 0 {
			t.Errorf("chunks of %d: frames %v (header bytes left %d), want %v", chunk, got, f.n, want)
		}
	}
}
