package main

import (
	"fmt"
	"strings"
	"time"

	snapi "berth.dev/berth/api/snapshots/v1"
	"berth.dev/berth/internal/units"
	"berth.dev/berth/snapshot"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newSnapshotCmd) }

// snapshotView shows keys as the namespace gave them: berthd strips its
// namespace prefix, so scripts can reuse a key they listed.
type snapshotView struct {
	Name      string            `json:"name"`
	Parent    string            `json:"parent,omitempty"`
	Kind      string            `json:"kind"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
}

func toSnapshotView(i *snapi.Info) snapshotView {
	return snapshotView{Name: i.Name, Parent: i.Parent, Kind: i.Kind, Labels: i.Labels, CreatedAt: i.CreatedAt.AsTime()}
}

// newSnapshotCmd is ctr's snapshot verbs over the snapshots API. It is
// for debugging and for building images by hand; the CLI never mounts
// anything itself, it prints the mount command (the user runs it, as
// root, on the node), because mounting is a privilege the CLI must not
// assume it has.
func newSnapshotCmd(g *globals) *cobra.Command {
	var sn string
	cmd := &cobra.Command{Use: "snapshot", Aliases: []string{"snapshots", "snap"}, Short: "Manage snapshots"}
	// --snapshotter is persistent: every subcommand acts on one
	// snapshotter, and keys of different snapshotters are unrelated.
	cmd.PersistentFlags().StringVar(&sn, "snapshotter", "", "snapshotter (default: berthd's, overlayfs)")
	// client dials per subcommand, so --help and flag errors need no
	// berthd.
	client := func(cmd *cobra.Command) (snapi.SnapshotsService, func(), error) {
		c, err := g.dial(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		return snapi.NewSnapshotsClient(c), func() { c.Close() }, nil
	}
	var output string
	var labels []string
	// printMounts prints one shell command (overlay options and all) so
	// `berth snapshot mounts /mnt KEY | sh` works as ctr's does.
	printMounts := func(cmd *cobra.Command, resp *snapi.MountsResponse, target string) {
		var ms []snapshot.Mount
		for _, m := range resp.Mounts {
			ms = append(ms, snapshot.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
		}
		fmt.Fprintln(cmd.OutOrStdout(), snapshot.ShellCommand(ms, target))
	}
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List snapshots", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.List(cmd.Context(), &snapi.ListSnapshotsRequest{Namespace: g.namespace, Snapshotter: sn})
			if err != nil {
				return err
			}
			var views []snapshotView
			for _, i := range resp.Info {
				views = append(views, toSnapshotView(i))
			}
			return printList(cmd.OutOrStdout(), output, views, []string{"KEY", "PARENT", "KIND"}, func(v snapshotView) []string {
				return []string{v.Name, orDash(v.Parent), v.Kind}
			})
		},
	}
	addOutputFlag(ls, &output)
	info := &cobra.Command{
		Use: "info KEY", Short: "Show a snapshot", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Stat(cmd.Context(), &snapi.StatSnapshotRequest{Namespace: g.namespace, Snapshotter: sn, Key: args[0]})
			if err != nil {
				return err
			}
			// One snapshot's info is always JSON: its labels do not fit a
			// table.
			return printObject(cmd.OutOrStdout(), "json", toSnapshotView(resp.Info))
		},
	}
	usage := &cobra.Command{
		Use: "usage [KEY]", Short: "Show disk usage of snapshots", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			// Without a key berthd measures each of the namespace's
			// snapshots; with one, that one alone (a walk can be slow).
			req := &snapi.UsageRequest{Namespace: g.namespace, Snapshotter: sn}
			if len(args) == 1 {
				req.Key = args[0]
			}
			resp, err := s.Usage(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), output, resp.Usage, []string{"KEY", "SIZE", "INODES"}, func(u *snapi.Usage) []string {
				return []string{u.Key, units.Bytes(u.Size), fmt.Sprint(u.Inodes)}
			})
		},
	}
	addOutputFlag(usage, &output)
	rm := &cobra.Command{
		Use: "rm KEY [KEY...]", Aliases: []string{"remove", "delete"}, Short: "Remove snapshots", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			// Stops at the first failure: a snapshot chain is removed
			// child first, and going on past a refused child would
			// only fail on its parent too.
			for _, k := range args {
				if _, err := s.Remove(cmd.Context(), &snapi.RemoveSnapshotRequest{Namespace: g.namespace, Snapshotter: sn, Key: k}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	// mounts prints, never mounts (see newSnapshotCmd). Its arguments are
	// in ctr's order, TARGET KEY, so ctr users' scripts carry over.
	mounts := &cobra.Command{
		Use: "mounts TARGET KEY", Short: "Print the command that mounts KEY on TARGET (pipe it to sh)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Mounts(cmd.Context(), &snapi.MountsRequest{Namespace: g.namespace, Snapshotter: sn, Key: args[1]})
			if err != nil {
				return err
			}
			printMounts(cmd, resp, args[0])
			return nil
		},
	}
	var target string
	// prepare and view make the snapshot and print its mount command only
	// with --target: the mounts are the snapshotter's details, which a
	// script that only wants the key should not have to parse.
	prepare := &cobra.Command{
		Use: "prepare KEY [PARENT]", Short: "Prepare a writable snapshot", Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			lm, err := parseKV(labels)
			if err != nil {
				return err
			}
			resp, err := s.Prepare(cmd.Context(), &snapi.PrepareSnapshotRequest{Namespace: g.namespace, Snapshotter: sn, Key: args[0], Parent: argOr(args, 1), Labels: lm})
			if err != nil {
				return err
			}
			if target != "" {
				printMounts(cmd, resp, target)
			}
			return nil
		},
	}
	view := &cobra.Command{
		Use: "view KEY PARENT", Short: "Create a read-only view of a committed snapshot", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			lm, err := parseKV(labels)
			if err != nil {
				return err
			}
			resp, err := s.View(cmd.Context(), &snapi.ViewSnapshotRequest{Namespace: g.namespace, Snapshotter: sn, Key: args[0], Parent: args[1], Labels: lm})
			if err != nil {
				return err
			}
			if target != "" {
				printMounts(cmd, resp, target)
			}
			return nil
		},
	}
	for _, c := range []*cobra.Command{prepare, view} {
		c.Flags().StringVar(&target, "target", "", "print the mount command for this target")
		c.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE")
	}
	// commit names the result in the namespace; berthd prefixes it, so a
	// committed snapshot can never take an image layer's chain ID.
	commit := &cobra.Command{
		Use: "commit NAME KEY", Short: "Commit an active snapshot under NAME", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			_, err = s.Commit(cmd.Context(), &snapi.CommitSnapshotRequest{Namespace: g.namespace, Snapshotter: sn, Name: args[0], Key: args[1]})
			return err
		},
	}
	cmd.AddCommand(ls, info, usage, rm, mounts, prepare, view, commit, newSnapshotDiffCmd(g, &sn))
	return cmd
}

// argOr is the optional positional argument i ("" when absent).
func argOr(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

// orDash fills an empty table cell with "-" so columns stay aligned for
// awk and cut.
func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
