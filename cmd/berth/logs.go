package main

import (
	"errors"
	"io"

	tasksapi "berth.dev/berth/api/tasks/v1"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newLogsCmd) }

func newLogsCmd(g *globals) *cobra.Command {
	var follow bool
	var tail int64
	cmd := &cobra.Command{
		Use: "logs [-f] [--tail N] ID", Short: "Print a container's output log (stdout to stdout, stderr to stderr)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			stream, err := tasksapi.NewTasksClient(c).Logs(cmd.Context(), &tasksapi.LogsRequest{Namespace: g.namespace, ContainerId: args[0], Tail: tail, Follow: follow})
			if err != nil {
				return err
			}
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
				w := cmd.OutOrStdout()
				if chunk.Stream == "stderr" {
					w = cmd.ErrOrStderr()
				}
				if _, err := w.Write(chunk.Data); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output while the task runs")
	cmd.Flags().Int64Var(&tail, "tail", -1, "print only the last N lines (-1: all)")
	return cmd
}
