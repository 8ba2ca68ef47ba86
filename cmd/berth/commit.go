package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	diffapi "berth.dev/berth/api/diff/v1"
	"github.com/spf13/cobra"
)

// layerFlags are the options of a layer computed from changes.
//
// gzip is the default compression because every registry and runtime
// reads it; zstd is smaller and faster but not yet read everywhere.
type layerFlags struct {
	compression     string
	sourceDateEpoch string
}

// add gives commit and snapshot diff the same flags, since both make a
// layer the same way.
func (f *layerFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.compression, "compression", "gzip", "layer compression: gzip|zstd|none")
	cmd.Flags().StringVar(&f.sourceDateEpoch, "source-date-epoch", "",
		"clamp every mtime (and date the image) to this Unix time, for a reproducible digest (default: $SOURCE_DATE_EPOCH if set)")
}

// options reads SOURCE_DATE_EPOCH as the reproducible-builds convention
// says, so a build system that sets it gets the same digest from berth
// as from its other tools; the flag wins over the environment.
func (f *layerFlags) options(getenv func(string) string) (*diffapi.LayerOptions, error) {
	o := &diffapi.LayerOptions{Compression: f.compression}
	s := f.sourceDateEpoch
	if s == "" {
		s = getenv("SOURCE_DATE_EPOCH")
	}
	if s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("source date epoch %q: want Unix seconds", s)
		}
		o.HasSourceDateEpoch, o.SourceDateEpoch = true, n
	}
	return o, nil
}

// diffClient is the diff API's client, shared by commit and snapshot diff
// (the two ways to make a layer from changes).
func diffClient(g *globals, cmd *cobra.Command) (diffapi.DiffService, func(), error) {
	c, err := g.dial(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	return diffapi.NewDiffClient(c), func() { c.Close() }, nil
}

// newContainerCommitCmd is `berth container commit ID REF`.
//
// It pauses a running task by default: a tree read while it is written
// gives a layer no run of the container ever had on disk.
func newContainerCommitCmd(g *globals) *cobra.Command {
	var lf layerFlags
	var changes []string
	var author, message, entrypoint, lease string
	var cmdArgs []string
	pause := true
	cmd := &cobra.Command{
		Use:   "commit [flags] ID REF",
		Short: "Make image REF from a container: its image plus one layer of what the container changed",
		Long: `Make image REF from container ID, as nerdctl commit does: the image's layers
plus one layer of what the container changed (whiteouts for deletions), and
its config carried over, with --change instructions (CMD, ENTRYPOINT, ENV,
WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL) applied. A running task is
paused while its tree is read unless --pause=false.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := lf.options(os.Getenv)
			if err != nil {
				return err
			}
			// --entrypoint and --cmd are shorthands for --change lines, so
			// berthd has one way to apply a config change.
			if entrypoint != "" {
				changes = append(changes, "ENTRYPOINT "+jsonArray([]string{entrypoint}))
			}
			if cmd.Flags().Changed("cmd") {
				changes = append(changes, "CMD "+jsonArray(cmdArgs))
			}
			s, done, err := diffClient(g, cmd)
			if err != nil {
				return err
			}
			defer done()
			// Timed here, around the one call, so the figure includes the
			// pause and the diff as the user waits for them.
			start := time.Now()
			resp, err := s.CommitContainer(withLease(cmd.Context(), lease), &diffapi.CommitContainerRequest{
				Namespace: g.namespace, Id: args[0], Ref: args[1], Changes: changes,
				Author: author, Message: message, Pause: pause, Options: opts,
			})
			if err != nil {
				return err
			}
			// The image on stdout (scripts capture it), the layer's figures
			// on stderr (people read them).
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", resp.Name, resp.Target.Digest)
			fmt.Fprintf(cmd.ErrOrStderr(), "layer %s (%d bytes, diffID %s) in %s\n", resp.Layer.Digest, resp.Layer.Size, resp.DiffId, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	lf.add(cmd)
	fl := cmd.Flags()
	fl.StringArrayVarP(&changes, "change", "c", nil, `Dockerfile instruction to apply to the config ("CMD [\"sh\"]", "ENV K=V"; repeatable)`)
	fl.StringVarP(&author, "author", "a", "", "author of the new layer")
	fl.StringVarP(&message, "message", "m", "", "commit message (the history entry's comment)")
	fl.StringVar(&entrypoint, "entrypoint", "", "set the image's entrypoint to this one executable")
	fl.StringArrayVar(&cmdArgs, "cmd", nil, "set the image's command (repeatable, one argument each)")
	fl.BoolVarP(&pause, "pause", "p", true, "pause the running task while committing")
	addLeaseFlag(cmd, &lease)
	return cmd
}

// layerView is a computed layer as -o json/yaml prints it; FastPath says
// whether berthd read the overlay upperdir directly or walked both trees
// (a figure for whoever wonders why one diff was slow).
type layerView struct {
	Digest    string   `json:"digest"`
	DiffID    string   `json:"diffID"`
	Size      int64    `json:"size"`
	MediaType string   `json:"mediaType"`
	Entries   int32    `json:"entries"`
	FastPath  bool     `json:"fastPath"`
	Changes   []string `json:"changes,omitempty"`
}

// newSnapshotDiffCmd is `berth snapshot diff KEY [PARENT]`.
//
// It writes the layer into the content store (under a lease, if given)
// and prints its digests; making an image of it is left to the caller,
// so it also serves tools that only want to inspect a change (-l).
func newSnapshotDiffCmd(g *globals, snapshotter *string) *cobra.Command {
	var lf layerFlags
	var list bool
	var output, lease string
	cmd := &cobra.Command{
		Use:   "diff [flags] KEY [PARENT]",
		Short: "Write the layer of a snapshot's changes (against PARENT, default its own parent) into the content store",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := lf.options(os.Getenv)
			if err != nil {
				return err
			}
			parent := ""
			if len(args) == 2 {
				parent = args[1]
			}
			s, done, err := diffClient(g, cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Compare(withLease(cmd.Context(), lease), &diffapi.CompareRequest{
				Namespace: g.namespace, Snapshotter: *snapshotter, Key: args[0], Parent: parent, Options: opts, List: list,
			})
			if err != nil {
				return err
			}
			v := layerView{Digest: resp.Diff.Digest, DiffID: resp.DiffId, Size: resp.Diff.Size, MediaType: resp.Diff.MediaType,
				Entries: resp.Entries, FastPath: resp.FastPath, Changes: resp.Changes}
			if output != "table" {
				return printObject(cmd.OutOrStdout(), output, v)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "digest:    %s\ndiffID:    %s\nsize:      %d\nmediaType: %s\nentries:   %d\n", v.Digest, v.DiffID, v.Size, v.MediaType, v.Entries)
			for _, c := range v.Changes {
				fmt.Fprintln(w, c)
			}
			return nil
		},
	}
	lf.add(cmd)
	cmd.Flags().BoolVarP(&list, "list", "l", false, "list the layer's entries (D: deleted, O: opaque dir)")
	addOutputFlag(cmd, &output)
	addLeaseFlag(cmd, &lease)
	return cmd
}

// jsonArray writes the exec form (["a","b"]) of a --change instruction,
// so arguments with spaces survive without shell parsing.
func jsonArray(args []string) string {
	if args == nil {
		args = []string{}
	}
	b, _ := json.Marshal(args)
	return string(b)
}
