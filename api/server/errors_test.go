package server

import (
	"context"
	"log/slog"
	"testing"

	nsapi "berth.dev/berth/api/namespaces/v1"
	tasksapi "berth.dev/berth/api/tasks/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

func TestUnaryInterceptor_Namespace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		req     proto.Message
		wantErr bool // InvalidArgument, and the handler never runs
	}{
		{"a label", &tasksapi.GetTaskRequest{Namespace: "edge-1", ContainerId: "web"}, false},
		{"empty is the handler's to default", &tasksapi.GetTaskRequest{ContainerId: "web"}, false},
		{"traversal", &tasksapi.GetTaskRequest{Namespace: "../../../../tmp", ContainerId: "x"}, true},
		{"slash", &tasksapi.DeleteTaskRequest{Namespace: "a/b", ContainerId: "x"}, true},
		{"dot dot", &tasksapi.StartTaskRequest{Namespace: "..", ContainerId: "x"}, true},
		{"upper case", &tasksapi.ListTasksRequest{Namespace: "Default"}, true},
		{"too long", &tasksapi.ListTasksRequest{Namespace: "a234567890123456789012345678901234567890123456789012345678901234"}, true},
		// A message field named namespace is no name: left to the handler.
		{"message field", &nsapi.CreateNamespaceRequest{Namespace: &nsapi.Namespace{Name: "ok"}}, false},
		{"no namespace field", &nsapi.DeleteNamespaceRequest{Name: "whatever/../x"}, false},
	}
	icpt := UnaryInterceptor(slog.New(slog.DiscardHandler), nil)
	info := &ttrpc.UnaryServerInfo{FullMethod: "/berth.tasks.v1.Tasks/Get"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, err := proto.Marshal(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			unmarshal := func(v any) error { return proto.Unmarshal(wire, v.(proto.Message)) }
			ran := false
			method := func(ctx context.Context, unmarshal func(any) error) (any, error) {
				req := tt.req.ProtoReflect().New().Interface()
				if err := unmarshal(req); err != nil {
					return nil, err
				}
				ran = true
				return req, nil
			}
			_, err = icpt(context.Background(), unmarshal, info, method)
			if tt.wantErr {
				if !errdefs.IsInvalidArgument(errgrpc.ToNative(err)) || ran {
					t.Errorf("got err %v (handler ran: %v), want InvalidArgument before the handler", err, ran)
				}
				return
			}
			if err != nil || !ran {
				t.Errorf("got err %v (handler ran: %v), want the handler to run", err, ran)
			}
		})
	}
}
