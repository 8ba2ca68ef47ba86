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
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
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
func rawCall(conn net.Conn, method string, req proto.Message) (*status.Status, error) {
	if err := rawSend(conn, 1, method, req); err != nil {
		return nil, err
	}
	_, st, err := rawReceive(conn)
	return st, err
}

func rawSend(conn net.Conn, stream uint32, method string, req proto.Message) error {
	payload, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	p, err := proto.Marshal(&ttrpc.Request{Service: "berth.shim.v1.Task", Method: method, Payload: payload})
	if err != nil {
		return err
	}
	hdr := make([]byte, frameHeaderLen)
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(p)))
	binary.BigEndian.PutUint32(hdr[4:8], stream)
	hdr[8] = frameRequest
	_, err = conn.Write(append(hdr, p...))
	return err
}

// rawReceive reads a response frame: its stream and status.
func rawReceive(conn net.Conn) (uint32, *status.Status, error) {
	hdr := make([]byte, frameHeaderLen)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:4]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return 0, nil, err
	}
	var resp ttrpc.Response
	if err := proto.Unmarshal(body, &resp); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(hdr[4:8]), resp.GetStatus(), nil
}

// A Wait pending when the shim is told to exit at once is answered (the
// shim goes: unavailable) rather than holding the exit until the drain
// gives up, its caller left without an answer.
func TestServe_ShutdownNowAnswersWaiters(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := newProcess("", nil)
	p.status = shimapi.Status_RUNNING
	svc := &Service{log: quietLog(), id: "web", init: p, done: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- serveUntilDone(quietLog(), l, svc, func() {}) }()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// One connection, read in order: the Wait is taken before the Shutdown.
	if err := rawSend(conn, 1, "Wait", &shimapi.WaitRequest{Id: "web"}); err != nil {
		t.Fatal(err)
	}
	if err := rawSend(conn, 3, "Shutdown", &shimapi.ShutdownRequest{Id: "web", Now: true}); err != nil {
		t.Fatal(err)
	}
	got := map[uint32]codes.Code{}
	for range 2 {
		stream, st, err := rawReceive(conn)
		if err != nil {
			t.Fatalf("answers so far %v, then: %v", got, err)
		}
		got[stream] = codes.Code(st.GetCode())
	}
	if got[1] != codes.Unavailable || got[3] != codes.OK {
		t.Errorf("answers: Wait %v, Shutdown %v; want Unavailable, OK", got[1], got[3])
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
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
