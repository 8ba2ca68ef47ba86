// Command berth is berth's command-line client. It talks to berthd over the
// ttrpc API only.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"github.com/spf13/cobra"
)

// exitError carries a specific exit code (berth diff: 1 means "differs";
// berth run: the container's own exit code).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// globals are the flags every command shares.
//
// They are read from the environment too (BERTH_ADDRESS, BERTH_NAMESPACE)
// so a shell or a systemd unit can point every call at one berthd and
// namespace without repeating flags.
type globals struct {
	address   string
	namespace string
	timeout   time.Duration
}

// envOr is a flag's default from the environment: the flag, when given,
// still wins.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// main maps errors to exit codes in one place: an exitError carries its
// own (1 for diff's "differs", the container's status for run), anything
// else is 2. The API's errors are turned back into errdefs classes first,
// so the message is the daemon's, without the wire's status wrapping.
func main() {
	// The first SIGINT/SIGTERM cancels the command's context; commands
	// that attach to a container (run, exec, task start) detach their RPCs
	// from it and forward the signal to the container instead.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	stop()
	printSpans()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "berth:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "berth:", errgrpc.ToNative(err))
	os.Exit(2)
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "berth",
		Short: "berth — a declarative container node agent",
		// Usage is not printed on a runtime error (a missing container is
		// not a usage mistake); errors are printed once, by main.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.address, "address", envOr("BERTH_ADDRESS", "/run/berth/berth.sock"), "berthd API socket ($BERTH_ADDRESS)")
	pf.StringVarP(&g.namespace, "namespace", "n", envOr("BERTH_NAMESPACE", spec.DefaultNamespace), "namespace ($BERTH_NAMESPACE)")
	// The connect timeout is short by default: a CLI that hangs on a dead
	// socket is worse than one that says berthd is not there.
	pf.DurationVar(&g.timeout, "connect-timeout", 5*time.Second, "how long to wait for berthd's socket")
	root.AddCommand(
		newVersionCmd(g),
		newNamespaceCmd(g),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(g))
	}
	registerCompletions(root, g)
	return root
}

// extraCommands lets each command group register itself from its own file.
var extraCommands []func(*globals) *cobra.Command

// dial connects to berthd.
//
// One connection per command: the CLI is short-lived, and ttrpc
// multiplexes the calls a command makes over it.
func (g *globals) dial(ctx context.Context) (*ttrpc.Client, error) {
	t := time.Now()
	d := net.Dialer{Timeout: g.timeout}
	conn, err := d.DialContext(ctx, "unix", g.address)
	if err != nil {
		return nil, dialError(g.address, err)
	}
	if cliSpans != nil {
		cliSpans.Add("dial", time.Since(t))
		return ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(spanInterceptor)), nil
	}
	return ttrpc.NewClient(conn), nil
}

// dialError says what to do about a failed connect: a socket that exists
// but is root-only needs a different user, not a running berthd.
func dialError(address string, err error) error {
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("connect to berthd at %s: permission denied: the API socket is root-only (mode 0600); run berth as root (sudo berth ...), or set --address or BERTH_ADDRESS to a socket you can reach: %w", address, err)
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connect to berthd at %s (is berthd running? set --address or BERTH_ADDRESS): %w", address, err)
	}
	return fmt.Errorf("connect to berthd at %s: %w", address, err)
}
