package server

import (
	"context"
	"log/slog"
	"time"

	"berth.dev/berth/internal/span"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Observer is told of every unary call (metrics hook); may be nil.
type Observer func(service, method string, d time.Duration, err error)

// UnaryInterceptor checks the namespace of every request (see
// checkNamespace), carries the lease its metadata names into the call,
// maps error classes to ttrpc codes at the edge and logs failures with the
// method that failed.
func UnaryInterceptor(log *slog.Logger, observe Observer) ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
		start := time.Now()
		ctx = withRequestLease(ctx)
		// Every call records its steps (cheap); they are logged at debug.
		rec := span.New()
		ctx = span.With(ctx, rec)
		resp, err := m(ctx, func(v any) error {
			if err := unmarshal(v); err != nil {
				return err
			}
			return checkNamespace(v)
		})
		if observe != nil {
			observe(serviceOf(info.FullMethod), methodOf(info.FullMethod), time.Since(start), err)
		}
		span.Log(ctx, log, rec, "method", info.FullMethod)
		if err != nil {
			log.Debug("api call failed", "method", info.FullMethod, "err", err)
			return resp, errgrpc.ToGRPC(err)
		}
		return resp, nil
	}
}

// checkNamespace refuses (InvalidArgument) a request whose string field
// "namespace" is set to anything but a DNS-1123 label, once, here, before
// any handler can make a path or a key of it ("../../tmp"). Empty is left
// to the handler (it means the default, or is refused there). Streaming
// calls pass no interceptor in ttrpc 1.2: their handlers check their own.
func checkNamespace(v any) error {
	pm, ok := v.(proto.Message)
	if !ok {
		return nil
	}
	m := pm.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("namespace")
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
		return nil
	}
	if ns := m.Get(fd).String(); ns != "" {
		return spec.ValidateNamespace(ns)
	}
	return nil
}

// streamErr maps an error returned by a streaming handler.
func streamErr(err error) error {
	if err == nil {
		return nil
	}
	return errgrpc.ToGRPC(err)
}

func serviceOf(full string) string {
	s, _ := splitMethod(full)
	return s
}

func methodOf(full string) string {
	_, m := splitMethod(full)
	return m
}

// splitMethod splits "/berth.images.v1.Images/Pull".
func splitMethod(full string) (string, string) {
	if len(full) > 0 && full[0] == '/' {
		full = full[1:]
	}
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '/' {
			return full[:i], full[i+1:]
		}
	}
	return full, ""
}
