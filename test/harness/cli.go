package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
)

// Result is one run of the berth CLI.
type Result struct {
	Args           []string // the arguments after --address SOCK
	Stdout, Stderr string
	// ExitCode is the CLI's exit status; -1 if it could not be run or was
	// killed at CLITimeout (Stderr then says why).
	ExitCode int
}

// String formats r for failure messages.
func (r Result) String() string {
	return fmt.Sprintf("berth %s: exit %d\nstdout:\n%s\nstderr:\n%s",
		strings.Join(r.Args, " "), r.ExitCode, r.Stdout, r.Stderr)
}

// CLI runs bin/berth --address SOCK with args against this daemon and
// returns what it printed and its exit code; a non-zero exit is not a test
// failure (berth diff exits 1 for a difference). BERTH_ADDRESS and
// BERTH_NAMESPACE from the test's environment are not passed on.
func (d *Daemon) CLI(args ...string) Result {
	d.t.Helper()
	return d.run(nil, args)
}

// CLIStdin is CLI with stdin, for `berth apply -f -`.
func (d *Daemon) CLIStdin(stdin string, args ...string) Result {
	d.t.Helper()
	return d.run(strings.NewReader(stdin), args)
}

// MustCLI runs the CLI like CLI and fails t unless it exits 0; it returns
// stdout.
func (d *Daemon) MustCLI(t testing.TB, args ...string) string {
	t.Helper()
	r := d.CLI(args...)
	if r.ExitCode != 0 {
		t.Fatalf("%s", r)
	}
	return r.Stdout
}

// CLICommand prepares bin/berth --address SOCK args for commands that
// stream or need a terminal-like setup (berth events, logs -f, run): the
// caller sets stdio, starts and waits for it; ctx's end kills it.
func (d *Daemon) CLICommand(ctx context.Context, args ...string) *exec.Cmd {
	d.t.Helper()
	if d.opts.Berth == "" {
		d.opts.Berth = testutil.Bin(d.t, "berth")
	}
	cmd := exec.CommandContext(ctx, d.opts.Berth, append([]string{"--address", d.Socket}, args...)...)
	cmd.Env = cliEnv()
	return cmd
}

func (d *Daemon) run(stdin io.Reader, args []string) Result {
	d.t.Helper()
	res := Result{Args: args}
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.CLITimeout)
	defer cancel()
	cmd := d.CLICommand(ctx, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res.Stdout, res.Stderr = out.String(), errb.String()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.ExitCode = -1
		res.Stderr += fmt.Sprintf("\n(harness: killed after %v)", d.opts.CLITimeout)
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	case err != nil:
		res.ExitCode = -1
		res.Stderr += "\n(harness: " + err.Error() + ")"
	}
	return res
}

// cliEnv is the test's environment without the variables that would point
// the CLI somewhere other than the flags say.
func cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BERTH_ADDRESS=") || strings.HasPrefix(kv, "BERTH_NAMESPACE=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
