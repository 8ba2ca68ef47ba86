package main

import (
	"fmt"
	"strings"

	"berth.dev/berth/spec"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newExplainCmd, newSchemaCmd) }

// newExplainCmd prints a field's type, default and meaning, as kubectl
// explain does; it needs no berthd (the reference is built into berth).
func newExplainCmd(g *globals) *cobra.Command {
	var recursive bool
	cmd := &cobra.Command{
		Use:   "explain KIND[.field.path]",
		Short: "Describe a manifest kind or field: its type, default and meaning",
		Example: `  berth explain container
  berth explain container.spec.resources.memory
  berth explain task.spec --recursive`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []cobra.Completion{"network", "image", "container", "task"},
		RunE: func(cmd *cobra.Command, args []string) error {
			// The reference is spec's own model (built from the types and
			// their doc comments), so explain, the JSON Schema and the
			// parser cannot disagree on a field.
			f, err := spec.Explain(args[0])
			if err != nil {
				return err
			}
			kind, _, _ := strings.Cut(args[0], ".")
			w := cmd.OutOrStdout()
			// kubectl explain's layout, which people already scan.
			fmt.Fprintf(w, "KIND:     %s\nVERSION:  %s\n\n", canonicalKind(kind), spec.APIVersion)
			if f.Path != "" {
				fmt.Fprintf(w, "FIELD:    %s <%s>\n", f.Path, f.Type)
				if f.Required {
					fmt.Fprintln(w, "REQUIRED: yes")
				} else if f.Default != "" {
					fmt.Fprintf(w, "DEFAULT:  %s\n", f.Default)
				}
				if len(f.Enum) > 0 {
					fmt.Fprintf(w, "VALUES:   %s\n", strings.Join(f.Enum, ", "))
				}
				fmt.Fprintln(w)
			}
			// Wrapped to 72 columns: doc comments are written for source
			// files, not for an 80-column terminal with an indent.
			fmt.Fprintf(w, "DESCRIPTION:\n%s\n", indent(wrap(f.Doc, 72), "  "))
			if len(f.Fields) > 0 {
				fmt.Fprintln(w, "\nFIELDS:")
				printFields(w, f.Fields, "  ", recursive)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&recursive, "recursive", false, "list the fields of nested objects too")
	return cmd
}

// printFields marks required fields and defaults beside the type, where
// the eye is, because those two are what one checks a manifest against.
func printFields(w interface{ Write([]byte) (int, error) }, fs []spec.Field, pad string, recursive bool) {
	for _, f := range fs {
		note := ""
		switch {
		case f.Required:
			note = " -required-"
		case f.Default != "":
			note = " (default: " + f.Default + ")"
		}
		fmt.Fprintf(w, "%s%s\t<%s>%s\n", pad, f.Name, f.Type, note)
		if recursive {
			printFields(w, f.Fields, pad+"  ", true)
		} else if f.Doc != "" {
			fmt.Fprintf(w, "%s\n", indent(wrap(f.Doc, 68), pad+"  "))
		}
	}
}

// canonicalKind takes the kind as people type it (task, Tasks) and
// returns it as the reference names it; anything else passes through so
// the reference's own "unknown kind" error names what was typed.
func canonicalKind(s string) string {
	for _, k := range spec.Kinds {
		if strings.EqualFold(string(k), s) || strings.EqualFold(string(k)+"s", s) {
			return string(k)
		}
	}
	return s
}

// wrap breaks text into lines of at most width runes at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(text) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

// newSchemaCmd prints the manifests' JSON Schema, for editors: with the
// YAML language server, a file starting
// `# yaml-language-server: $schema=berth.schema.json` is validated and
// completed as it is typed.
func newSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of berth manifests (for editors and CI checks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Generated from the same model as explain, at run time, so
			// the schema is always the binary's own version.
			out, err := spec.JSONSchema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}
