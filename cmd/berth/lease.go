package main

import (
	"context"
	"fmt"
	"time"

	leasesapi "berth.dev/berth/api/leases/v1"
	"github.com/containerd/ttrpc"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newLeaseCmd) }

// addLeaseFlag adds --lease to a command that creates resources.
//
// A lease is how a script that builds something in several steps (pull,
// prepare, commit) keeps garbage collection off its parts between the
// steps; the flag is the same on every command that creates something.
func addLeaseFlag(cmd *cobra.Command, lease *string) {
	cmd.Flags().StringVar(lease, "lease", "", "add what this creates to lease ID (see berth lease create)")
}

// withLease names the lease in the request metadata of calls made with ctx.
//
// It travels as ttrpc metadata, as containerd's does, so the request
// messages need no lease field and every service honours it alike.
func withLease(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	md, ok := ttrpc.GetMetadata(ctx)
	if !ok {
		md = ttrpc.MD{}
	}
	md.Set(leasesapi.MetadataKey, id)
	return ttrpc.WithMetadata(ctx, md)
}

// leaseView's ExpiresAt is nil for a lease that never expires.
type leaseView struct {
	ID        string            `json:"id"`
	CreatedAt time.Time         `json:"createdAt"`
	ExpiresAt *time.Time        `json:"expiresAt,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

func toLeaseView(l *leasesapi.Lease) leaseView {
	v := leaseView{ID: l.Id, CreatedAt: l.CreatedAt.AsTime(), Labels: l.Labels}
	if l.ExpiresAt != nil {
		t := l.ExpiresAt.AsTime()
		v.ExpiresAt = &t
	}
	return v
}

// parseLabels refuses a label without "=": a lease's labels are GC
// roots (containerd.io/gc.ref.*), and a typo must not become an empty
// one silently.
func parseLabels(kvs []string) (map[string]string, error) { return parseKV(kvs) }

// newLeaseCmd is ctr's lease verbs.
func newLeaseCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "lease", Aliases: []string{"leases"}, Short: "Manage leases: what a lease holds is kept from garbage collection"}
	client := func(cmd *cobra.Command) (leasesapi.LeasesService, func(), error) {
		c, err := g.dial(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		return leasesapi.NewLeasesClient(c), func() { c.Close() }, nil
	}
	var id string
	var expires time.Duration
	var labels []string
	create := &cobra.Command{
		Use: "create", Short: "Create a lease and print its ID", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			if expires < 0 {
				return fmt.Errorf("--expires %s is negative", expires)
			}
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Create(cmd.Context(), &leasesapi.CreateLeaseRequest{Namespace: g.namespace, Id: id, Labels: ls,
				// The expiry is rounded up to whole seconds (the wire's
				// unit), so --expires 1ms is a second and not "never".
				ExpiresSeconds: int64((expires + time.Second - 1) / time.Second)})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Lease.Id)
			return nil
		},
	}
	create.Flags().StringVar(&id, "id", "", "the lease's ID (default: a random one)")
	create.Flags().DurationVar(&expires, "expires", 0, "end the lease by itself after this long (1h, 30m; default: never)")
	create.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")

	var output string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the namespace's leases", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.List(cmd.Context(), &leasesapi.ListLeasesRequest{Namespace: g.namespace})
			if err != nil {
				return err
			}
			var views []leaseView
			for _, l := range resp.Leases {
				views = append(views, toLeaseView(l))
			}
			return printList(cmd.OutOrStdout(), output, views, []string{"ID", "CREATED", "EXPIRES", "LABELS"}, func(v leaseView) []string {
				// An absolute local time, not "in 5m": a lease's expiry
				// is compared with clocks and logs, not read as a countdown.
				exp := "never"
				if v.ExpiresAt != nil {
					exp = v.ExpiresAt.Local().Format(time.RFC3339)
				}
				return []string{v.ID, ago(v.CreatedAt), exp, labelString(v.Labels)}
			})
		},
	}
	addOutputFlag(ls, &output)

	var syncGC bool
	// rm ends leases; with --sync the collection runs before it returns,
	// so a script can count on the space being free afterwards.
	rm := &cobra.Command{
		Use: "rm ID...", Aliases: []string{"delete"}, Short: "End leases (what only they held goes at the next garbage collection)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			for _, id := range args {
				if _, err := s.Delete(cmd.Context(), &leasesapi.DeleteLeaseRequest{Namespace: g.namespace, Id: id, Sync: syncGC}); err != nil {
					return fmt.Errorf("lease %s: %w", id, err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			return nil
		},
	}
	rm.Flags().BoolVar(&syncGC, "sync", false, "collect what the lease held before returning")

	resources := &cobra.Command{
		Use: "resources ID", Short: "List what a lease holds", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.ListResources(cmd.Context(), &leasesapi.ListResourcesRequest{Namespace: g.namespace, Id: args[0]})
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), output, resp.Resources, []string{"TYPE", "ID"}, func(r *leasesapi.Resource) []string {
				return []string{r.Type, r.Id}
			})
		},
	}
	addOutputFlag(resources, &output)

	resourceCmd := func(use, short string, call func(context.Context, leasesapi.LeasesService, string, *leasesapi.Resource) error) *cobra.Command {
		return &cobra.Command{
			Use: use + " ID TYPE RESOURCE", Short: short + " (TYPE: content, ingests, snapshots/<snapshotter>)", Args: cobra.ExactArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, done, err := client(cmd)
				if err != nil {
					return err
				}
				defer done()
				return call(cmd.Context(), s, args[0], &leasesapi.Resource{Type: args[1], Id: args[2]})
			},
		}
	}
	add := resourceCmd("add", "Add a resource to a lease", func(ctx context.Context, s leasesapi.LeasesService, id string, r *leasesapi.Resource) error {
		_, err := s.AddResource(ctx, &leasesapi.AddResourceRequest{Namespace: g.namespace, Id: id, Resource: r})
		return err
	})
	del := resourceCmd("remove", "Remove a resource from a lease", func(ctx context.Context, s leasesapi.LeasesService, id string, r *leasesapi.Resource) error {
		_, err := s.DeleteResource(ctx, &leasesapi.DeleteResourceRequest{Namespace: g.namespace, Id: id, Resource: r})
		return err
	})
	cmd.AddCommand(create, ls, rm, resources, add, del)
	return cmd
}
