package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	rolloutapi "berth.dev/berth/api/rollout/v1"
	"github.com/spf13/cobra"
)

func init() {
	extraCommands = append(extraCommands, newRolloutCmd)
}

// rolloutClient is the rollout service's client: --atomic applies go
// through it rather than Manifests.Apply because berthd, not the CLI,
// must see the revision through (and roll it back) even if the CLI dies.
func (g *globals) rolloutClient(ctx context.Context) (rolloutapi.RolloutService, func(), error) {
	c, err := g.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	return rolloutapi.NewRolloutClient(c), func() { c.Close() }, nil
}

// atomicApply is berth apply --atomic: the files as one revision of the
// apply set, rolled back by berthd if it does not become Ready in time.
func atomicApply(cmd *cobra.Command, g *globals, path string, files []*manifestsapi.File, set string, timeout, minReady time.Duration) error {
	// The source recorded in the revision is the path as berthd can
	// show it later in history: absolute, or "<stdin>".
	source := path
	if path != "-" {
		if abs, err := filepath.Abs(path); err == nil {
			source = abs
		}
	} else {
		source = "<stdin>"
	}
	ctx := cmd.Context()
	svc, done, err := g.rolloutClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := svc.Apply(ctx, &rolloutapi.ApplyRequest{Files: files, Namespace: g.namespace, Applyset: set,
		// Durations travel as milliseconds: the wire has no duration
		// type, and seconds would round away a short min-ready.
		TimeoutMs: timeout.Milliseconds(), MinReadyMs: minReady.Milliseconds(), Source: source})
	if err != nil {
		return err
	}
	return printOutcome(cmd.OutOrStdout(), cmd.ErrOrStderr(), resp)
}

// printOutcome prints each object's result on stdout and the revision's
// fate last; a rollback is exit 2 with its story on stderr, so a script
// that only checks the status still fails, and a person reads why.
func printOutcome(out, errw io.Writer, resp *rolloutapi.ApplyResponse) error {
	for _, r := range resp.Results {
		if r.Action == "restarted" { // its Container is recreated: say why, as apply does
			fmt.Fprintf(out, "%s restarted: %s\n", refString(r.Ref), r.Message)
			continue
		}
		fmt.Fprintf(out, "%s %s\n", refString(r.Ref), r.Action)
	}
	rev := resp.Revision
	switch {
	case resp.Unchanged:
		fmt.Fprintf(out, "revision %d of %s unchanged (%s)\n", rev.GetNumber(), rev.GetSet(), shortHash(rev.GetHash()))
		return nil
	case !resp.Failed:
		fmt.Fprintf(out, "revision %d of %s ready in %s (%s)\n", rev.Number, rev.Set,
			(time.Duration(resp.ReadyMs) * time.Millisecond).Round(time.Millisecond), shortHash(rev.Hash))
		return nil
	}
	back := "the state before any revision"
	if resp.RolledBackTo > 0 {
		back = "revision " + strconv.FormatInt(resp.RolledBackTo, 10)
	}
	fmt.Fprintf(errw, "revision %d of %s failed: %s: %s\n", rev.Number, rev.Set, refString(resp.Object), resp.Reason)
	if resp.RollbackReady {
		fmt.Fprintf(errw, "rolled back to %s: ready again in %s\n", back, (time.Duration(resp.RollbackMs) * time.Millisecond).Round(time.Millisecond))
	} else {
		fmt.Fprintf(errw, "rolled back to %s: not ready yet after %s (berthd goes on converging)\n", back, (time.Duration(resp.RollbackMs) * time.Millisecond).Round(time.Millisecond))
	}
	return &exitError{code: 2, err: fmt.Errorf("revision %d rolled back", rev.Number)}
}

// shortHash keeps "sha256:" and the first 12 hex digits: enough to tell
// revisions apart, short enough for a table.
func shortHash(h string) string {
	if len(h) > 19 {
		return h[:19]
	}
	return h
}

// newRolloutCmd reads and rewinds the revisions berthd keeps; undo is a
// new revision (of the old contents), never a rewrite of history, so the
// history always says what ran when.
func newRolloutCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "History and undo of the revisions berth apply --atomic rolls out",
	}
	var set, output string
	history := &cobra.Command{
		Use:   "history",
		Short: "List the kept revisions of an apply set (every set without --applyset)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			svc, done, err := g.rolloutClient(ctx)
			if err != nil {
				return err
			}
			defer done()
			resp, err := svc.History(ctx, &rolloutapi.HistoryRequest{Applyset: set})
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), output, resp.Revisions,
				[]string{"SET", "REVISION", "STATE", "TIME", "TOOK", "HASH", "OBJECTS", "SOURCE", "COMMIT", "REASON"},
				func(r *rolloutapi.Revision) []string {
					num := strconv.FormatInt(r.Number, 10)
					// The revision in force is starred: after an undo the
					// newest revision is not the one running.
					if r.Current {
						num += "*"
					}
					commit := r.Commit
					// A git commit shortened as git log --oneline does.
					if len(commit) > 12 {
						commit = commit[:12]
					}
					t, took := "", "-"
					if r.Time != nil {
						t = r.Time.AsTime().Local().Format(time.DateTime)
						if r.Finished != nil {
							took = r.Finished.AsTime().Sub(r.Time.AsTime()).Round(10 * time.Millisecond).String()
						}
					}
					return []string{r.Set, num, r.State, t, took, shortHash(r.Hash), strconv.Itoa(int(r.Objects)), r.Source, commit, r.Reason}
				})
		},
	}
	history.Flags().StringVar(&set, "applyset", "", "the apply set (default: every set)")
	history.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	var (
		to                int64
		timeout, minReady time.Duration
		undoSet           string
	)
	undo := &cobra.Command{
		Use:   "undo",
		Short: "Roll an apply set back to its previous Ready revision (or --to-revision N), as a new revision",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			svc, done, err := g.rolloutClient(ctx)
			if err != nil {
				return err
			}
			defer done()
			resp, err := svc.Undo(ctx, &rolloutapi.UndoRequest{Applyset: undoSet, ToRevision: to,
				TimeoutMs: timeout.Milliseconds(), MinReadyMs: minReady.Milliseconds()})
			if err != nil {
				return err
			}
			return printOutcome(cmd.OutOrStdout(), cmd.ErrOrStderr(), resp)
		},
	}
	undo.Flags().Int64Var(&to, "to-revision", 0, "the revision to go back to (default: the Ready one before the current)")
	undo.Flags().StringVar(&undoSet, "applyset", "", "the apply set (default: "+defaultRolloutSet+")")
	undo.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long the revision may take to become Ready")
	undo.Flags().DurationVar(&minReady, "min-ready", time.Second, "how long every object must stay Ready together")
	cmd.AddCommand(history, undo)
	return cmd
}

// defaultRolloutSet is berthd's set for --atomic without --applyset.
const defaultRolloutSet = "default"
