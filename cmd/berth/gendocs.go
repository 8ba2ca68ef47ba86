package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() { extraCommands = append(extraCommands, newGenDocsCmd) }

// newGenDocsCmd writes man pages generated from the command tree, so the
// pages cannot drift from the flags the binary takes. Hidden: `make man`
// and `make install` call it; users read the pages it writes.
func newGenDocsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "__gendocs man DIR", Hidden: true, Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "man" {
				return fmt.Errorf("__gendocs: %q is not a format (man)", args[0])
			}
			if err := os.MkdirAll(args[1], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // reproducible pages: no generation date
			hdr := &doc.GenManHeader{Title: "BERTH", Section: "1", Source: "berth", Manual: "berth manual"}
			if err := doc.GenManTree(root, hdr, args[1]); err != nil {
				return fmt.Errorf("write man pages to %s: %w", args[1], err)
			}
			return nil
		},
	}
}
