package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// addOutputFlag adds -o table|json|yaml to a listing command.
//
// One flag with one set of names for every listing, so scripts learn
// -o json once.
func addOutputFlag(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", "table", "output format: table|json|yaml")
}

// printList prints items as a table (header + row func) or as JSON/YAML of
// the items themselves. JSON listings are always arrays, even when empty.
//
// An empty listing is [] and not null so `jq length` works on it; the
// table always has its header so an empty one is visibly empty.
func printList[T any](w io.Writer, format string, items []T, header []string, row func(T) []string) error {
	switch format {
	case "json":
		if items == nil {
			items = []T{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(items)
	case "yaml":
		if items == nil {
			items = []T{}
		}
		data, err := yaml.Marshal(items)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, it := range items {
			fmt.Fprintln(tw, strings.Join(row(it), "\t"))
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown output format %q (table, json, yaml)", format)
}

// printObject prints one value as JSON or YAML (table falls back to YAML).
//
// JSON is indented: it is read by people as often as by jq.
func printObject(w io.Writer, format string, v any) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	data, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// ago prints a time as "5 minutes ago".
//
// It is the long form, for lists of records (images, containers) where
// the column is wide enough; get's tables use the short age.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d seconds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}
