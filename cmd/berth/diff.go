package main

import (
	"fmt"
	"strings"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"github.com/spf13/cobra"
)

// newDiffCmd prints what berthd says it would do: the actions come from
// the server's plan (package plan), the same function the reconcilers
// execute, so the CLI computes nothing and cannot drift from berthd. Exit
// codes are diff(1)'s and kubectl diff's, so scripts can gate on them.
func newDiffCmd(g *globals) *cobra.Command {
	var file string
	var prune bool
	var scope applyScope
	cmd := &cobra.Command{
		Use:   "diff -f FILE|DIR|-",
		Short: "Show how manifests differ from what is in force and what berth would do",
		Long: `Diff compares each object with the one in force and with the node, and prints a
unified diff of the manifests and the actions berth would take (pull, unpack,
create, recreate with the fields that changed, start, stop, pause, resume,
restart; wait for a Task whose container another Task runs). They are the
reconcilers' own plan, computed on the node as it is now.
With --prune (and --applyset or -l, as for apply) it also lists the objects apply
--prune would delete. It changes nothing. Exit status: 0 no difference, 1 a
difference (or something to prune), 2 or more an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Every failure is exit 2 (exitError), never 1: 1 means
			// "differs", and a script must not read an error as that.
			if file == "" {
				return &exitError{code: 2, err: fmt.Errorf("-f FILE|DIR|- is required")}
			}
			if err := scope.check(prune); err != nil {
				return &exitError{code: 2, err: err}
			}
			// Files are read here and sent, as for apply: berthd may not
			// see the client's paths (or may see other files there).
			files, err := readManifests(file, cmd.InOrStdin())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ctx := cmd.Context()
			svc, done, err := g.manifestsClient(ctx)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer done()
			resp, err := svc.Diff(ctx, &manifestsapi.DiffRequest{Files: files, Namespace: g.namespace,
				Prune: prune, Applyset: scope.applySet, Selector: scope.selector})
			if err != nil {
				return err // main exits 2
			}
			if printDiffs(cmd, resp.Diffs) {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "manifest file, directory of manifests, or - for stdin")
	cmd.Flags().BoolVar(&prune, "prune", false, "also show what apply --prune would delete (needs --applyset or -l)")
	scope.add(cmd)
	return cmd
}

// printDiffs prints every object that differs and reports whether any did.
//
// An object with neither a text difference nor an action is skipped, so
// a clean diff prints nothing, as diff(1) does.
func printDiffs(cmd *cobra.Command, diffs []*manifestsapi.ObjectDiff) bool {
	out := cmd.OutOrStdout()
	differs := false
	for _, d := range diffs {
		if d.Diff == "" && len(d.Actions) == 0 {
			continue
		}
		differs = true
		fmt.Fprintf(out, "%s\n", refString(d.Ref))
		if d.Diff != "" {
			fmt.Fprint(out, indent(d.Diff, "  "))
		}
		for _, a := range d.Actions {
			line := "  => " + a.Verb
			if len(a.Fields) > 0 {
				line += " (" + strings.Join(a.Fields, ", ") + ")"
			}
			if a.Reason != "" {
				line += ": " + a.Reason
			}
			fmt.Fprintln(out, line)
		}
	}
	return differs
}

// indent prefixes each non-empty line, keeping a trailing newline as is,
// so nested output (a diff inside an object's section) lines up.
func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(prefix)
			b.WriteString(l)
		}
	}
	return b.String()
}
