package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	imagesapi "berth.dev/berth/api/images/v1"
	"berth.dev/berth/internal/units"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// Each command group registers itself from its own file, so adding one
// touches no shared list (and no merge conflict in main.go).
func init() { extraCommands = append(extraCommands, newImageCmd) }

// imageView is an image as -o json/yaml prints it: the fields a script
// wants, flat, with stable names (the wire message's names are protobuf's
// and may change with the proto).
type imageView struct {
	Name      string            `json:"name"`
	Digest    string            `json:"digest"`
	MediaType string            `json:"mediaType"`
	Size      int64             `json:"size"`
	Unpacked  map[string]string `json:"unpacked,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

func toImageView(i *imagesapi.Image) imageView {
	return imageView{Name: i.Name, Digest: i.Target.GetDigest(), MediaType: i.Target.GetMediaType(), Size: i.Size,
		Unpacked: i.Unpacked, Labels: i.Labels, CreatedAt: i.CreatedAt.AsTime(), UpdatedAt: i.UpdatedAt.AsTime()}
}

// isTerminal decides between redrawn progress lines and plain lines: a
// log file or a pipe gets no escape sequences.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// newImageCmd is containerd's image verbs (ctr images …) so that people
// who know ctr know these. Each subcommand dials on its own, so `berth
// image --help` works without a berthd.
func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Aliases: []string{"images", "i"}, Short: "Manage images"}
	// client dials per subcommand, so --help and flag errors need no
	// berthd.
	client := func(cmd *cobra.Command) (imagesapi.ImagesClient, func(), error) {
		c, err := g.dial(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		return imagesapi.NewImagesClient(c), func() { c.Close() }, nil
	}
	var output string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the namespace's images", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.List(cmd.Context(), &imagesapi.ListImagesRequest{Namespace: g.namespace})
			if err != nil {
				return err
			}
			var views []imageView
			for _, i := range resp.Images {
				views = append(views, toImageView(i))
			}
			// The full digest, not a short one: image ls is where one
			// copies a digest from to pin a reference.
			return printList(cmd.OutOrStdout(), output, views, []string{"REF", "DIGEST", "SIZE", "UNPACKED", "CREATED"}, func(v imageView) []string {
				var sns []string
				for sn := range v.Unpacked {
					sns = append(sns, sn)
				}
				// Sorted: a map's order would make the column change
				// between two runs with nothing changed.
				sort.Strings(sns)
				return []string{v.Name, v.Digest, units.Bytes(v.Size), orDash(strings.Join(sns, ",")), ago(v.CreatedAt)}
			})
		},
	}
	addOutputFlag(ls, &output)
	inspect := &cobra.Command{
		Use: "inspect NAME", Short: "Show an image record", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Get(cmd.Context(), &imagesapi.GetImageRequest{Namespace: g.namespace, Name: args[0]})
			if err != nil {
				return err
			}
			// inspect of one object defaults to JSON: a table of one
			// record's every field reads worse than the record.
			format := output
			if format == "table" {
				format = "json"
			}
			return printObject(cmd.OutOrStdout(), format, toImageView(resp.Image))
		},
	}
	addOutputFlag(inspect, &output)
	var syncGC bool
	rm := &cobra.Command{
		Use: "rm NAME [NAME...]", Aliases: []string{"remove", "delete"}, Short: "Remove images (their blobs and layers are collected when nothing else needs them)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			// One at a time, going on after a failure, as docker rmi:
			// the exit status says whether any failed.
			return forEach(args, func(name string) error {
				if _, err := s.Delete(cmd.Context(), &imagesapi.DeleteImageRequest{Namespace: g.namespace, Name: name, Sync: syncGC}); err != nil {
					return err
				}
				// Each removed name on its own line, so a partial
				// failure's output says which went.
				fmt.Fprintln(cmd.OutOrStdout(), name)
				return nil
			})
		},
	}
	// --sync makes the space reclaim part of the command, for scripts that
	// check free space right after.
	rm.Flags().BoolVar(&syncGC, "sync", false, "wait for garbage collection")
	var unpackSnapshotter, unpackPlatform string
	// unpack is for a snapshotter other than the one the pull unpacked
	// into; it prints the chain ID, the key of the top layer's snapshot.
	unpackCmd := &cobra.Command{
		Use: "unpack NAME", Short: "Unpack an image into a snapshotter", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Unpack(cmd.Context(), &imagesapi.UnpackRequest{Namespace: g.namespace, Name: args[0],
				Snapshotter: unpackSnapshotter, Platform: unpackPlatform})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.ChainId)
			return nil
		},
	}
	unpackCmd.Flags().StringVar(&unpackSnapshotter, "snapshotter", "", "snapshotter (default: berthd's, overlayfs)")
	unpackCmd.Flags().StringVar(&unpackPlatform, "platform", "", "platform of an index to unpack (default: the host's)")
	cmd.AddCommand(ls, inspect, rm, unpackCmd, newPullCmd(g, client), newImportCmd(g, client), newExportCmd(g, client),
		newPushCmd(g, client), newTagCmd(g, client))
	return cmd
}

// imagesClientFunc is shared by the subcommands defined in their own
// functions, so they dial the same way and close the connection the same
// way.
type imagesClientFunc func(*cobra.Command) (imagesapi.ImagesClient, func(), error)

// newPullCmd streams progress as berthd reports it; the pull itself runs
// in berthd, so interrupting the CLI cancels the call but a pull that
// berthd's own controllers share goes on.
func newPullCmd(g *globals, client imagesClientFunc) *cobra.Command {
	var platform, snapshotter, lease string
	var plainHTTP, unpack bool
	cmd := &cobra.Command{
		Use: "pull REF", Short: "Pull an image from a registry (and unpack it)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			stream, err := s.Pull(withLease(cmd.Context(), lease), &imagesapi.PullRequest{Namespace: g.namespace, Ref: args[0], Platform: platform,
				PlainHttp: plainHTTP, Unpack: unpack, Snapshotter: snapshotter})
			if err != nil {
				return err
			}
			// Without a terminal only a change of what the pull waits on
			// (a retry, a slow registry) is printed: a log must not get a
			// line per progress message.
			tty := isTerminal(os.Stdout)
			var lines int
			var final *imagesapi.PullProgress
			var lastWait string
			for {
				p, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				final = p
				if tty {
					lines = drawProgress(cmd.OutOrStdout(), p, lines)
				} else if p.Waiting != "" && p.Waiting != lastWait {
					fmt.Fprintln(cmd.ErrOrStderr(), "waiting:", p.Waiting)
				}
				lastWait = p.Waiting
			}
			if final == nil || final.Image == nil {
				return fmt.Errorf("pull %s: berthd ended the stream without a result", args[0])
			}
			// The summary gives bytes fetched, not image size: layers
			// already in the store cost nothing, and that is what the
			// figure should show.
			mbps := 0.0
			if final.Seconds > 0 {
				mbps = float64(final.BytesFetched) / final.Seconds / 1e6
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %d blobs, %s fetched in %.2fs (%.1f MB/s)\n", final.Image.Name,
				final.Image.Target.GetDigest(), len(final.Layers), units.Bytes(final.BytesFetched), final.Seconds, mbps)
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "os/arch[/variant] to pull from an index (default: the host's)")
	cmd.Flags().BoolVar(&plainHTTP, "plain-http", false, "allow plain HTTP to this registry")
	cmd.Flags().BoolVar(&unpack, "unpack", true, "unpack the image into the snapshotter after the pull")
	cmd.Flags().StringVar(&snapshotter, "snapshotter", "", "snapshotter to unpack into (default: berthd's, overlayfs)")
	addLeaseFlag(cmd, &lease)
	return cmd
}

// drawProgress redraws the per-blob progress lines on a terminal.
//
// It moves the cursor up over the previous frame and clears each line,
// so the frame can shrink or grow without leaving debris.
func drawProgress(w io.Writer, p *imagesapi.PullProgress, prev int) int {
	if prev > 0 {
		fmt.Fprintf(w, "\x1b[%dA", prev)
	}
	for _, l := range p.Layers {
		short := strings.TrimPrefix(l.Digest, "sha256:")
		if len(short) > 12 {
			short = short[:12]
		}
		pct := 100.0
		if l.Total > 0 {
			pct = float64(l.Offset) * 100 / float64(l.Total)
		}
		rate := ""
		if l.Rate > 0 && l.Status == "downloading" {
			rate = "  " + units.Bytes(int64(l.Rate)) + "/s"
		}
		fmt.Fprintf(w, "\x1b[2K%s  %-11s %5.1f%%  %s / %s%s\n", short, l.Status, pct, units.Bytes(l.Offset), units.Bytes(l.Total), rate)
	}
	fmt.Fprintf(w, "\x1b[2K%s\n", waitLine(p.Waiting))
	return len(p.Layers) + 1
}

// newImportCmd sends a path, not the bytes: berthd reads the archive
// itself (it runs on the same node), which avoids copying gigabytes over
// the socket. The path is made absolute and checked here so a typo fails
// with the CLI's own working directory in mind.
func newImportCmd(g *globals, client imagesClientFunc) *cobra.Command {
	var name, snapshotter, platform, lease string
	var unpack bool
	cmd := &cobra.Command{
		Use: "import DIR|ARCHIVE", Short: "Import an OCI layout directory, an OCI archive or a docker-save archive", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if _, err := os.Stat(path); err != nil {
				return err
			}
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Import(withLease(cmd.Context(), lease), &imagesapi.ImportRequest{Namespace: g.namespace, Path: path, Name: name,
				Unpack: unpack, Snapshotter: snapshotter, Platform: platform})
			if err != nil {
				return err
			}
			for _, i := range resp.Images {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", i.Name, i.Target.GetDigest())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name for the image (default: the archive's own name)")
	cmd.Flags().BoolVar(&unpack, "unpack", true, "unpack after import")
	cmd.Flags().StringVar(&snapshotter, "snapshotter", "", "snapshotter to unpack into")
	cmd.Flags().StringVar(&platform, "platform", "", "platform to unpack (default: the host's)")
	addLeaseFlag(cmd, &lease)
	return cmd
}

// newExportCmd writes to OUT.partial and renames it once the stream has
// ended and been synced, so an interrupted export never leaves a
// truncated archive under the name asked for.
func newExportCmd(g *globals, client imagesClientFunc) *cobra.Command {
	return &cobra.Command{
		Use: "export OUT.tar|- NAME [NAME...]", Short: "Export images as an OCI archive", Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			stream, err := s.Export(cmd.Context(), &imagesapi.ExportRequest{Namespace: g.namespace, Names: args[1:]})
			if err != nil {
				return err
			}
			// "-" streams to stdout (into docker load, ssh, a file of the
			// user's choosing); no partial file is involved then.
			var out io.Writer = cmd.OutOrStdout()
			var f *os.File
			if args[0] != "-" {
				tmp := args[0] + ".partial"
				if f, err = os.Create(tmp); err != nil {
					return err
				}
				defer os.Remove(tmp)
				defer f.Close()
				out = f
			}
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				if _, err := out.Write(chunk.Data); err != nil {
					return err
				}
			}
			if f != nil {
				// Synced before the rename, so after a power cut the
				// name holds either nothing or the whole archive.
				if err := f.Sync(); err != nil {
					return err
				}
				return os.Rename(f.Name(), args[0])
			}
			return nil
		},
	}
}

// waitLine keeps the progress frame's last line even when nothing waits,
// so the frame's height does not jump.
func waitLine(w string) string {
	if w == "" {
		return ""
	}
	return "waiting: " + w
}

// newPushCmd pushes the host's platform by default: an index whose other
// platforms' blobs were never pulled cannot be pushed whole.
func newPushCmd(g *globals, client imagesClientFunc) *cobra.Command {
	var platform string
	var all, plainHTTP bool
	cmd := &cobra.Command{
		Use: "push [--platform P|--all-platforms] REF [TARGET]", Short: "Push an image from the content store to a registry",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Refused here rather than letting one win: the two ask
			// for different pushes.
			if all && platform != "" {
				return fmt.Errorf("--platform and --all-platforms exclude each other")
			}
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			req := &imagesapi.PushRequest{Namespace: g.namespace, Name: args[0], Platform: platform, AllPlatforms: all, PlainHttp: plainHTTP}
			if len(args) == 2 {
				req.Target = args[1]
			}
			resp, err := s.Push(cmd.Context(), req)
			if err != nil {
				return err
			}
			// How each blob got there (pushed, cross-repo mounted,
			// already present) tells a user why a push was fast or slow.
			counts := map[string]int{}
			for _, how := range resp.Blobs {
				counts[how]++
			}
			target := req.Target
			if target == "" {
				target = args[0]
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %d pushed, %d mounted, %d already there\n", target, resp.Target.GetDigest(),
				counts["pushed"], counts["mounted"], counts["exists"])
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "push only this platform's manifest of an index (default: the host's)")
	cmd.Flags().BoolVar(&all, "all-platforms", false, "push the whole index (every platform's blobs must be in the content store)")
	cmd.Flags().BoolVar(&plainHTTP, "plain-http", false, "allow plain HTTP to this registry")
	return cmd
}

// newTagCmd makes a second record of the same target; nothing is copied.
func newTagCmd(g *globals, client imagesClientFunc) *cobra.Command {
	return &cobra.Command{
		Use: "tag SRC DST", Short: "Give an image another name", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Tag(cmd.Context(), &imagesapi.TagRequest{Namespace: g.namespace, Source: args[0], Target: args[1]})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", resp.Image.Name, resp.Image.Target.GetDigest())
			return nil
		},
	}
}
