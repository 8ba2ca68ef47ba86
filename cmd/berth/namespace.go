package main

import (
	"time"

	nsapi "berth.dev/berth/api/namespaces/v1"
	"github.com/spf13/cobra"
)

// namespaceView is a namespace as -o json/yaml prints it.
type namespaceView struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
}

// newNamespaceCmd manages the records that scope every other object.
// Objects are created in a namespace implicitly (a manifest's or -n's);
// create is for labelling one ahead, rm for cleaning up, and berthd
// refuses rm while anything still lives in it.
func newNamespaceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "namespace", Aliases: []string{"ns", "namespaces"}, Short: "Manage namespaces"}
	var output string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List namespaces", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := nsapi.NewNamespacesClient(c).List(cmd.Context(), &nsapi.ListNamespacesRequest{})
			if err != nil {
				return err
			}
			var views []namespaceView
			for _, n := range resp.Namespaces {
				views = append(views, namespaceView{Name: n.Name, Labels: n.Labels, CreatedAt: n.CreatedAt.AsTime()})
			}
			return printList(cmd.OutOrStdout(), output, views, []string{"NAME", "LABELS", "CREATED"}, func(v namespaceView) []string {
				return []string{v.Name, labelString(v.Labels), ago(v.CreatedAt)}
			})
		},
	}
	addOutputFlag(ls, &output)
	var labels []string
	// create takes labels for all the names given: namespaces made
	// together usually belong together (a tenant's, an environment's).
	create := &cobra.Command{
		Use: "create NAME [NAME...]", Short: "Create namespaces", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			lm, err := parseKV(labels)
			if err != nil {
				return err
			}
			// Each name is printed as it is created, so after a
			// failure the output says which were made.
			for _, name := range args {
				if _, err := nsapi.NewNamespacesClient(c).Create(cmd.Context(), &nsapi.CreateNamespaceRequest{Namespace: &nsapi.Namespace{Name: name, Labels: lm}}); err != nil {
					return err
				}
				cmd.Println(name)
			}
			return nil
		},
	}
	create.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")
	// rm stops at the first namespace berthd refuses (still in use), so
	// the output lists exactly the ones removed.
	rm := &cobra.Command{
		Use: "rm NAME [NAME...]", Aliases: []string{"remove", "delete"}, Short: "Remove empty namespaces", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			for _, name := range args {
				if _, err := nsapi.NewNamespacesClient(c).Delete(cmd.Context(), &nsapi.DeleteNamespaceRequest{Name: name}); err != nil {
					return err
				}
				cmd.Println(name)
			}
			return nil
		},
	}
	cmd.AddCommand(ls, create, rm)
	return cmd
}
