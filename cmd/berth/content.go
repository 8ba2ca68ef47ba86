package main

import (
	"fmt"
	"time"

	contentapi "berth.dev/berth/api/content/v1"
	"berth.dev/berth/internal/units"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newContentCmd) }

// blobView is a blob as -o json/yaml prints it. Blobs have no namespace:
// the store keeps each digest once for every namespace, so the content
// commands take no -n.
type blobView struct {
	Digest    string            `json:"digest"`
	Size      int64             `json:"size"`
	CreatedAt time.Time         `json:"createdAt"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// newContentCmd lists and prunes; it has no rm, because removing a blob
// an image still needs breaks that image, and prune is the safe way
// (leases and every namespace's images are honoured).
func newContentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "content", Short: "Inspect and prune the content store (shared by all namespaces)"}
	var output string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List blobs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := contentapi.NewContentClient(c).List(cmd.Context(), &contentapi.ListContentRequest{})
			if err != nil {
				return err
			}
			var views []blobView
			for _, i := range resp.Info {
				views = append(views, blobView{Digest: i.Digest, Size: i.Size, CreatedAt: i.CreatedAt.AsTime(), Labels: i.Labels})
			}
			return printList(cmd.OutOrStdout(), output, views, []string{"DIGEST", "SIZE", "AGE", "LABELS"}, func(v blobView) []string {
				return []string{v.Digest, units.Bytes(v.Size), ago(v.CreatedAt), labelString(v.Labels)}
			})
		},
	}
	addOutputFlag(ls, &output)
	var dryRun bool
	prune := &cobra.Command{
		Use: "prune", Short: "Remove blobs and committed layers no image references", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := contentapi.NewContentClient(c).Prune(cmd.Context(), &contentapi.PruneRequest{DryRun: dryRun})
			if err != nil {
				return err
			}
			// One removed thing per line on stdout (scripts count them),
			// the summary on stderr.
			for _, d := range resp.Removed {
				fmt.Fprintln(cmd.OutOrStdout(), d)
			}
			for _, s := range resp.RemovedSnapshots {
				fmt.Fprintln(cmd.OutOrStdout(), "snapshot", s)
			}
			for _, r := range resp.RemovedIngests {
				fmt.Fprintln(cmd.OutOrStdout(), "ingest", r)
			}
			// A dry run says "would remove" so its summary is never read
			// as something that happened.
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			ingests := ""
			if len(resp.RemovedIngests) > 0 {
				ingests = fmt.Sprintf(" and %d stale ingests", len(resp.RemovedIngests))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s %d blobs (%s) and %d snapshots%s\n", verb, len(resp.Removed), units.Bytes(resp.Bytes), len(resp.RemovedSnapshots), ingests)
			return nil
		},
	}
	prune.Flags().BoolVar(&dryRun, "dry-run", false, "only list what would be removed")
	cmd.AddCommand(ls, prune)
	return cmd
}
