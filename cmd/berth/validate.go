package main

import (
	"errors"
	"fmt"
	"io"

	"berth.dev/berth/spec"
	"github.com/spf13/cobra"
)

func init() {
	extraCommands = append(extraCommands, newValidateCmd)
}

// newValidateCmd runs spec's parser, defaults and validation in the CLI,
// with no berthd: a CI job or a git hook can check manifests before they
// reach a node. It is the same code berthd runs, so valid here is valid
// there (only references to objects elsewhere, such as a Container's
// Image, are a node's to judge).
func newValidateCmd(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR|- [-f ...]",
		Short: "Check manifests offline: parse, default and validate as berthd would",
		Long: `Validate reads each -f (a file, every manifest of a directory under the watched
directory's rule, or - for stdin) and parses, defaults and validates it with the code
berthd uses, without contacting berthd. Every problem is printed on its own line with
its file, document, object and field. Exit status: 0 valid, 1 invalid manifests, 2 a
usage or read error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return &exitError{code: 2, err: fmt.Errorf("-f FILE|DIR|- is required")}
			}
			n, nfiles, errs, err := validateManifests(files, cmd.InOrStdin())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			// Errors go to stdout, one per line with file and field,
			// so a CI log shows them and grep finds them; exit 1 keeps
			// "invalid" apart from "could not read" (2).
			if len(errs) > 0 {
				for _, e := range errs {
					fmt.Fprintln(cmd.OutOrStdout(), e.Error())
				}
				return &exitError{code: 1}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d %s in %d %s valid\n", n, plural(n, "object"), nfiles, plural(nfiles, "file"))
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file, directory of manifests, or - for stdin (repeatable)")
	return cmd
}

// validateManifests loads every file of paths as the watched directory
// does (spec.Load) and returns the number of objects and files, every
// field error, or an error when a path cannot be read.
func validateManifests(paths []string, stdin io.Reader) (objects, files int, errs spec.ErrorList, err error) {
	var all []spec.Object
	defer func() {
		// What one object cannot show: a dependsOn cycle across the set.
		if err == nil {
			errs = append(errs, spec.CheckDependencies(all)...)
		}
	}()
	for _, p := range paths {
		fs, err := readManifests(p, stdin)
		if err != nil {
			return 0, 0, nil, err
		}
		for _, f := range fs {
			files++
			objs, err := spec.Load(f.File, f.Data)
			var l spec.ErrorList
			switch {
			case errors.As(err, &l):
				errs = append(errs, l...)
			case err != nil:
				return 0, 0, nil, fmt.Errorf("%s: %w", f.File, err)
			}
			objects += len(objs)
			all = append(all, objs...)
		}
	}
	return objects, files, errs, nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
