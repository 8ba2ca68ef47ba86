package main

import (
	"fmt"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/spec"
	"github.com/spf13/cobra"
)

// newDeleteCmd removes objects from the API source, as kubectl delete
// does. It never edits a manifest file: an object a file declares is the
// file's, and berthd refuses to delete it (naming the file), because the
// next read of the directory would only declare it again.
func newDeleteCmd(g *globals) *cobra.Command {
	var file, selector string
	cmd := &cobra.Command{
		Use:   "delete KIND NAME... | delete KIND -l SELECTOR | delete -f FILE|DIR|-",
		Short: "Delete objects applied with berth apply (what a manifest file declares is removed from the file)",
		RunE: func(cmd *cobra.Command, args []string) error {
			var refs []*manifestsapi.Ref
			skipped := 0
			switch {
			case file != "" && len(args) > 0:
				return fmt.Errorf("give either -f or KIND NAME, not both")
			case selector != "" && (file != "" || len(args) != 1):
				return fmt.Errorf("-l takes KIND (image(s), container(s), task(s), network(s), all) and no names or -f")
			case selector != "":
				var err error
				if refs, skipped, err = selected(cmd, g, args[0], selector); err != nil {
					return err
				}
				if len(refs) == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "no objects applied with berth apply in namespace %s match %s\n", g.namespace, selector)
					if skipped > 0 {
						return &exitError{code: 2}
					}
					return nil
				}
			case file != "":
				// -f deletes what a file declares, read here only for
				// its keys: the file need not be valid beyond them, and
				// its other contents are not sent.
				files, err := readManifests(file, cmd.InOrStdin())
				if err != nil {
					return err
				}
				for _, f := range files {
					objs, err := spec.Parse(f.File, f.Data)
					if err != nil {
						return err
					}
					for _, o := range objs {
						if o.Metadata.Namespace == "" {
							o.Metadata.Namespace = g.namespace
						}
						// Default fills in the namespace as berthd would,
						// so the key is the one the object has in force.
						k := spec.Default(o).Key()
						refs = append(refs, &manifestsapi.Ref{Namespace: k.Namespace, Kind: string(k.Kind), Name: k.Name})
					}
				}
			case len(args) >= 2:
				kind, err := parseKindArg(args[0])
				if err != nil {
					return err
				}
				// As describe: a name is unique only within a kind.
				if kind == "" {
					return fmt.Errorf("delete needs one kind: image, container or task")
				}
				for _, name := range args[1:] {
					refs = append(refs, &manifestsapi.Ref{Namespace: g.namespace, Kind: kind, Name: name})
				}
			default:
				return fmt.Errorf("give KIND NAME or -f FILE")
			}
			ctx := cmd.Context()
			svc, done, err := g.manifestsClient(ctx)
			if err != nil {
				return err
			}
			defer done()
			resp, err := svc.Delete(ctx, &manifestsapi.DeleteRequest{Refs: refs})
			if err != nil {
				return err
			}
			// Deleting what is not there is an error (exit 2), as kubectl
			// delete says NotFound: a typo in a name must not look done.
			missing := 0
			for _, r := range resp.Results {
				if r.Action == "notfound" {
					missing++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s not found\n", refString(r.Ref))
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", refString(r.Ref), r.Action)
			}
			if missing > 0 || skipped > 0 {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "delete the objects a manifest file, directory or stdin declares")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "delete the objects of KIND whose labels match (app=web,tier!=db; berthd evaluates it)")
	return cmd
}

// selected lists the refs of the objects of kind matching selector that
// berth apply applied; those a manifest file declares are named on stderr
// and counted, as delete cannot remove them.
func selected(cmd *cobra.Command, g *globals, kindArg, selector string) ([]*manifestsapi.Ref, int, error) {
	kind, err := parseKindArg(kindArg)
	if err != nil {
		return nil, 0, err
	}
	ctx := cmd.Context()
	svc, done, err := g.manifestsClient(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer done()
	resp, err := svc.Get(ctx, &manifestsapi.GetRequest{Namespace: g.namespace, Kind: kind, Selector: selector})
	if err != nil {
		return nil, 0, err
	}
	objs, err := decodeObjects(resp.Objects)
	if err != nil {
		return nil, 0, err
	}
	var refs []*manifestsapi.Ref
	skipped := 0
	for _, o := range objs {
		ref := &manifestsapi.Ref{Namespace: o.view.Metadata.Namespace, Kind: o.view.Kind, Name: o.view.Metadata.Name}
		if o.source != "api" {
			skipped++
			fmt.Fprintf(cmd.ErrOrStderr(), "%s is declared by the manifest file %s: remove it there\n", refString(ref), o.source)
			continue
		}
		refs = append(refs, ref)
	}
	return refs, skipped, nil
}
