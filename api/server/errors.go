package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
)

// Observer is told of every unary call (metrics hook); may be nil.
type Observer func(service, method string, d time.Duration, err error)

// UnaryInterceptor maps error classes to ttrpc codes at the edge and logs
// failures with the method that failed.
func UnaryInterceptor(log *slog.Logger, observe Observer) ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
		start := time.Now()
		resp, err := m(ctx, unmarshal)
		if observe != nil {
			observe(serviceOf(info.FullMethod), methodOf(info.FullMethod), time.Since(start), err)
		}
		if err != nil {
			log.Debug("api call failed", "method", info.FullMethod, "err", err)
			return resp, errgrpc.ToGRPC(err)
		}
		return resp, nil
	}
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
