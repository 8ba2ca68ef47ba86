package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	tasksapi "berth.dev/berth/api/tasks/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func init() { extraCommands = append(extraCommands, newLogsCmd) }

// newLogsCmd reads the log berthd keeps under its root (CRI format,
// rotated by size), not the shim's pipes: the log outlives the task and
// berthd restarts, so logs of an exited or crashed container can still be
// read. The window (--since/--until/--tail) is applied by berthd across
// the rotated files, so a tail of a big log sends only the tail.
func newLogsCmd(g *globals) *cobra.Command {
	var follow, timestamps bool
	var tail int64
	var since, until string
	cmd := &cobra.Command{
		Use:   "logs [-f] [-t] [--tail N] [--since T] [--until T] ID",
		Short: "Print a container's output log (stdout to stdout, stderr to stderr)",
		Long: `Print a container's output log (stdout to stdout, stderr to stderr).

--since and --until take a time (2026-12-04T10:00:00Z, 2026-12-04) or a
duration back from now (10m, 1h30m), as docker logs does; --tail counts
among the records they keep.

-f follows the output while the task runs. Of a container a declared Task
runs, it follows across the restarts the Task's restartPolicy makes, and
prints a marker line on stdout before each new run's output:

  --- berth: web restarted at 2026-12-04T10:00:00Z (its last run exited with status 1) ---

(OOMKilled in it when the kernel killed the last run for its memory
limit). It follows across the recreation of the Container (a changed
spec) too, and ends when the task exits and will not be started again,
when the objects are deleted, or on Ctrl-C.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &tasksapi.LogsRequest{Namespace: g.namespace, ContainerId: args[0], Tail: tail, Follow: follow, FollowRestarts: follow}
			// One "now" for both bounds, so --since 10m --until 5m is
			// exactly five minutes wide.
			now := time.Now()
			for _, b := range []struct {
				flag, value string
				to          **timestamppb.Timestamp
			}{{"since", since, &req.Since}, {"until", until, &req.Until}} {
				if b.value == "" {
					continue
				}
				t, err := parseLogTime(b.value, now)
				if err != nil {
					return fmt.Errorf("--%s: %w", b.flag, err)
				}
				*b.to = timestamppb.New(t)
			}
			// The window is checked before dialling, so a bad --since
			// fails fast even with no berthd.
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			stream, err := tasksapi.NewTasksClient(c).Logs(cmd.Context(), req)
			if err != nil {
				return err
			}
			// A record without a newline is partial: its line goes on in
			// the next record of the same stream, which gets no prefix.
			midLine := map[string]bool{}
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil // interrupted while following
					}
					return err
				}
				// stdout and stderr stay apart, as the container wrote
				// them, so `berth logs web 2>/dev/null` works as with
				// docker.
				w := cmd.OutOrStdout() // and the "restart" marker
				if chunk.Stream == "stderr" {
					w = cmd.ErrOrStderr()
				}
				if timestamps && !midLine[chunk.Stream] {
					if _, err := io.WriteString(w, chunk.Time.AsTime().UTC().Format(time.RFC3339Nano)+" "); err != nil {
						return err
					}
				}
				midLine[chunk.Stream] = len(chunk.Data) == 0 || chunk.Data[len(chunk.Data)-1] != '\n'
				if _, err := w.Write(chunk.Data); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output while the task runs, across the restarts of a declared Task")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with the time it was written (RFC 3339, UTC)")
	cmd.Flags().Int64Var(&tail, "tail", -1, "print only the last N lines (-1: all)")
	cmd.Flags().StringVar(&since, "since", "", "only lines written at or after this time or duration ago (2026-12-04T10:00:00Z, 10m)")
	cmd.Flags().StringVar(&until, "until", "", "only lines written before this time or duration ago")
	return cmd
}

// parseLogTime reads a --since/--until value: an RFC 3339 time, a date, a
// Unix time in seconds, or a duration back from now.
//
// A duration is tried first: "10m" is also a valid prefix of nothing
// else, while a bare number is read as Unix seconds only if it is not a
// duration.
func parseLogTime(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a duration back from now must not be negative", v)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		sec := int64(s)
		return time.Unix(sec, int64((s-float64(sec))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2026-12-04T10:00:00Z, 2026-12-04) nor a duration (10m)", v)
}
