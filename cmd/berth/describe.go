package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// newDescribeCmd is kubectl describe's shape: the one place that joins an
// object's spec, its status, who else declares it and what happened to
// it lately, for a person asking "why is this not Ready".
func newDescribeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show an object: spec, status, conditions, conflicts and recent events",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := parseKindArg(args[0])
			if err != nil {
				return err
			}
			// "all" is a listing word; describe shows one object, so
			// it needs the kind that, with the name, is its key.
			if kind == "" {
				return fmt.Errorf("describe needs one kind: network, image, container or task")
			}
			ctx := cmd.Context()
			svc, done, err := g.manifestsClient(ctx)
			if err != nil {
				return err
			}
			defer done()
			resp, err := svc.Describe(ctx, &manifestsapi.DescribeRequest{Ref: &manifestsapi.Ref{Namespace: g.namespace, Kind: kind, Name: args[1]}})
			if err != nil {
				return err
			}
			return printDescribe(cmd.OutOrStdout(), resp)
		},
	}
}

// printDescribe prints fixed sections in a fixed order, each omitted when
// empty, so the output is short for a healthy object and the eye finds
// Conditions and Events where it expects them. Spec and status are YAML,
// as the user wrote the manifest; conditions and events are tables,
// because they are read across.
func printDescribe(w io.Writer, r *manifestsapi.DescribeResponse) error {
	objs, err := decodeObjects([]*manifestsapi.Object{r.Object})
	if err != nil {
		return err
	}
	o := objs[0]
	v := o.view
	fmt.Fprintf(w, "Name:        %s\nNamespace:   %s\nKind:        %s\n", v.Metadata.Name, v.Metadata.Namespace, v.Kind)
	fmt.Fprintf(w, "Source:      %s\nGeneration:  %d\n", o.source, o.generation)
	// The source's error is shown beside the object: a file that no
	// longer parses keeps this object's last good spec in force, and
	// this is where one learns the spec shown is not the file's.
	if s := r.Source; s != nil {
		if s.Revision != "" {
			fmt.Fprintf(w, "Revision:    %s\n", s.Revision)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "SourceError: %s%s\n", s.Error, sinceText(s.ErrorTime.AsTime(), s.ErrorTime != nil))
		}
	}
	section := func(title string, v any) {
		b, err := yaml.Marshal(v)
		if err != nil || string(b) == "{}\n" || string(b) == "null\n" {
			return
		}
		fmt.Fprintf(w, "%s:\n%s", title, indent(string(b), "  "))
	}
	if md, ok := o.obj["metadata"].(map[string]any); ok {
		if l := md["labels"]; l != nil {
			section("Labels", l)
		}
	}
	section("Spec", o.obj["spec"])
	// Conditions are left out of the Status section: the table below
	// shows them, with their ages.
	st := map[string]any{}
	if s, ok := o.obj["status"].(map[string]any); ok {
		for k, val := range s {
			if k != "conditions" {
				st[k] = val
			}
		}
	}
	section("Status", st)
	if len(v.Status.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
		for _, c := range v.Status.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, orDash(c.Reason), age(c.LastTransitionTime), c.Message)
		}
		tw.Flush()
	}
	if len(r.Conflicts) > 0 {
		fmt.Fprintln(w, "Conflicts:")
		for _, c := range r.Conflicts {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	fmt.Fprintln(w, "Events:")
	if len(r.Events) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIME\tTOPIC\tEVENT")
	for _, ev := range r.Events {
		// Local time with milliseconds: events come in bursts, and the
		// order within one second is what one reads.
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", ev.Timestamp.AsTime().Local().Format("15:04:05.000"), ev.Topic, string(ev.Event))
	}
	return tw.Flush()
}
