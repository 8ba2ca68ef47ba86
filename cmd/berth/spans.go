package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"berth.dev/berth/internal/span"
	"github.com/containerd/ttrpc"
)

// BERTH_SPANS=1 makes the CLI print, on stderr as it exits, how long each
// API call took from here and how long main ran, in one line:
//
//	berth spans: main=118ms dial=0.2ms rpc.Containers.Create=9ms ...
//
// make bench subtracts main from the wall clock it measures outside to get
// the process's own start and exit. Off, it costs one getenv.
var (
	cliSpans = func() *span.Recorder {
		if os.Getenv("BERTH_SPANS") == "" {
			return nil
		}
		return span.New()
	}()
)

// spanInterceptor times every unary call of the CLI.
func spanInterceptor(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, info *ttrpc.UnaryClientInfo, invoker ttrpc.Invoker) error {
	t := time.Now()
	err := invoker(ctx, req, resp)
	// "/berth.tasks.v1.Tasks/Create" → "rpc.Tasks.Create"
	m := info.FullMethod
	if i := strings.LastIndexByte(m, '.'); i >= 0 {
		m = m[i+1:]
	}
	cliSpans.Add("rpc."+strings.ReplaceAll(m, "/", "."), time.Since(t))
	return err
}

func printSpans() {
	if cliSpans == nil {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "berth spans: main=%s", cliSpans.Elapsed())
	for _, s := range cliSpans.Spans() {
		fmt.Fprintf(&b, " %s=%s", s.Name, s.Dur)
	}
	fmt.Fprintln(os.Stderr, b.String())
}
