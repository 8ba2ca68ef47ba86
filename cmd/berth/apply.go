package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/spec"
	"github.com/spf13/cobra"
)

// The declarative verbs (apply, diff, get, describe, delete) share the
// manifests client and the -f reader, so they are registered together.
func init() {
	extraCommands = append(extraCommands, newApplyCmd, newDiffCmd, newGetCmd, newDescribeCmd, newDeleteCmd)
}

// manifestsClient dials berthd and returns its manifests service.
//
// The returned done closes the connection; callers defer it so a command
// that returns early never leaves the socket open.
func (g *globals) manifestsClient(ctx context.Context) (manifestsapi.ManifestsService, func(), error) {
	c, err := g.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	return manifestsapi.NewManifestsClient(c), func() { c.Close() }, nil
}

// readManifests reads -f: a file, every manifest of a directory (not
// recursive), or "-" for stdin. Each file keeps its name for errors and
// its absolute directory for the relative paths in it.
//
// The CLI reads the files and sends their bytes (never paths) because
// berthd may run in another mount namespace or chroot, and because what
// berthd would read at a path is not what the user is looking at. A
// directory is read by the watched directory's rule (spec.IsManifestFile),
// so `apply -f dir` and dropping dir into the watched directory take the
// same files.
func readManifests(path string, stdin io.Reader) ([]*manifestsapi.File, error) {
	if path == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, spec.MaxFileSize+1))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		if err := spec.CheckText(data); err != nil {
			return nil, fmt.Errorf("<stdin>: %w; not sent", err)
		}
		// Relative paths in stdin's objects resolve against the shell's
		// directory, as they would for a file there.
		wd, _ := os.Getwd()
		return []*manifestsapi.File{{Data: data, File: "<stdin>", Dir: wd}}, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var paths []string
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !spec.IsManifestFile(e.Name()) {
				continue
			}
			p := filepath.Join(path, e.Name())
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				continue // dangling symlinks, directories
			}
			paths = append(paths, p)
		}
		// Sorted, so the set and its error messages are in the same order
		// on every run.
		sort.Strings(paths)
		if len(paths) == 0 {
			return nil, fmt.Errorf("%s: no manifests (*.yaml, *.yml, *.json)", path)
		}
	} else {
		paths = []string{path}
	}
	var files []*manifestsapi.File
	for _, p := range paths {
		data, err := readManifestFile(p)
		if err != nil {
			return nil, err
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		files = append(files, &manifestsapi.File{Data: data, File: p, Dir: filepath.Dir(abs)})
	}
	return files, nil
}

// readManifestFile reads one -f file under the rules the watched
// directory applies (spec.CheckText): a regular file of at most
// spec.MaxFileSize bytes of UTF-8 text. The path may point anywhere
// (/dev/zero, a symlink to /etc/shadow): what is refused here is neither
// sent nor echoed.
func readManifestFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s); not read", p, fi.Mode().Type())
	}
	if fi.Size() > spec.MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the limit of %d; not read", p, fi.Size(), spec.MaxFileSize)
	}
	// The file may grow after the stat: read no more than the cap.
	data, err := io.ReadAll(io.LimitReader(f, spec.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if err := spec.CheckText(data); err != nil {
		return nil, fmt.Errorf("%s: %w; not sent", p, err)
	}
	return data, nil
}

// refString is how every command names an object: KIND NS/NAME, which is
// what describe and delete take back.
func refString(r *manifestsapi.Ref) string {
	return fmt.Sprintf("%s %s/%s", r.GetKind(), r.GetNamespace(), r.GetName())
}

// newApplyCmd records intent and returns: berthd's controllers do the
// work. --wait turns that into "return when it is done" for scripts,
// by watching the statuses rather than by a second code path.
func newApplyCmd(g *globals) *cobra.Command {
	var (
		file                string
		prune, dryRun, wait bool
		atomic              bool
		timeout, minReady   time.Duration
		scope               applyScope
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Apply manifests: berth owns the objects as the \"api\" source and reconciles them",
		Long: `Apply sends the objects of a file, of every manifest in a directory, or of stdin to berthd
as one set. Objects that a manifest file in the watched directory declares are not
changed (reported as conflict). --prune deletes objects applied earlier with berth apply
that the set no longer declares, within a scope it must be given: --applyset NAME
(recorded on every object as the label berth.dev/applyset, as kubectl's ApplySet)
prunes the set's members only, -l SELECTOR those matching it (and applies only
the objects that match). --wait waits until every applied object is Ready.

--atomic applies the set as one revision of its apply set (--applyset, default
"default"): the revision's images are fetched before anything is stopped, members
of the set it does not name are pruned, and if any object is not Ready within
--timeout, berthd puts every object back as it was in the previous revision and
the command fails naming the object and the reason. See berth rollout history
and berth rollout undo.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f FILE|DIR|- is required")
			}
			if err := scope.check(prune); err != nil {
				return err
			}
			files, err := readManifests(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if atomic {
				if prune || dryRun || scope.selector != "" {
					return fmt.Errorf("--atomic replaces the whole apply set (it prunes by itself) and takes neither --prune, --dry-run nor -l")
				}
				return atomicApply(cmd, g, file, files, scope.applySet, timeout, minReady)
			}
			ctx := cmd.Context()
			svc, done, err := g.manifestsClient(ctx)
			if err != nil {
				return err
			}
			defer done()
			resp, err := svc.Apply(ctx, &manifestsapi.ApplyRequest{Files: files, Prune: prune, DryRun: dryRun, Namespace: g.namespace,
				Applyset: scope.applySet, Selector: scope.selector})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			suffix := ""
			if dryRun {
				suffix = " (dry run)"
			}
			// A conflict is not applied but does not stop the rest of the
			// set; it goes to stderr and makes the exit status 2, so a
			// script notices that part of its set is someone else's.
			conflicts := 0
			var applied []*manifestsapi.Ref
			for _, r := range resp.Results {
				switch r.Action {
				case "conflict":
					conflicts++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s conflict: %s%s\n", refString(r.Ref), r.Message, suffix)
					continue
				case "created", "configured", "unchanged":
					applied = append(applied, r.Ref)
				case "restarted": // its Container is recreated: say why
					applied = append(applied, r.Ref)
					fmt.Fprintf(out, "%s restarted: %s%s\n", refString(r.Ref), r.Message, suffix)
					continue
				}
				fmt.Fprintf(out, "%s %s%s\n", refString(r.Ref), r.Action, suffix)
			}
			// Only what was applied is waited for: a conflicting
			// object's readiness is the file's, not this apply's.
			if wait && !dryRun {
				if err := waitReady(ctx, svc, applied, timeout, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			if conflicts > 0 {
				return &exitError{code: 2, err: fmt.Errorf("%d object(s) not applied: declared by a manifest file", conflicts)}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&file, "filename", "f", "", "manifest file, directory of manifests, or - for stdin")
	fl.BoolVar(&prune, "prune", false, "delete objects applied with berth apply that this set no longer declares (needs --applyset or -l)")
	scope.add(cmd)
	fl.BoolVar(&dryRun, "dry-run", false, "show what would be applied, change nothing")
	fl.BoolVar(&wait, "wait", false, "wait until every applied object is Ready")
	fl.DurationVar(&timeout, "timeout", 60*time.Second, "with --wait: how long to wait; with --atomic: how long the revision may take to become Ready")
	fl.BoolVar(&atomic, "atomic", false, "apply the set as one revision that berthd rolls back if it is not Ready within --timeout")
	fl.DurationVar(&minReady, "min-ready", time.Second, "with --atomic: how long every object must stay Ready together")
	return cmd
}

// applyScope is what --prune may delete: an apply set's members, the
// objects a selector matches, or both.
type applyScope struct {
	applySet, selector string
}

func (s *applyScope) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.applySet, "applyset", "", "apply set NAME the objects belong to (recorded as the label "+spec.LabelApplySet+"); scopes --prune")
	cmd.Flags().StringVarP(&s.selector, "selector", "l", "", "label selector (app=web,tier!=db): only matching objects; scopes --prune")
}

// check refuses --prune without a scope: unscoped, it would delete what
// anyone else applied in the namespace.
func (s *applyScope) check(prune bool) error {
	if prune && s.applySet == "" && s.selector == "" {
		return fmt.Errorf("--prune needs a scope: --applyset NAME or -l SELECTOR (without one it would delete what others applied)")
	}
	return nil
}

// objectView is the part of an object's JSON the CLI reads.
// It decodes only what the CLI needs, so a berthd with more fields
// (newer) still works with this CLI.
type objectView struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec   json.RawMessage `json:"spec"`
	Status spec.Status     `json:"status"`
}

// readiness says whether an object is Ready for its current generation,
// and if not, why.
func readiness(o *manifestsapi.Object) (bool, string) {
	// berth wait's rule (objectCondition): Ready for an older generation
	// is not ready, since the controllers have not seen this apply yet.
	ok, why, err := objectCondition(o, spec.ConditionReady, spec.ConditionTrue)
	if err != nil {
		return false, err.Error()
	}
	return ok, why
}

// waitReady polls Get until every ref is Ready or timeout passes.
//
// It polls (every 200 ms) rather than subscribing to events: a poll of
// the statuses cannot miss a transition that happened before it started,
// and an apply's objects are few.
func waitReady(ctx context.Context, svc manifestsapi.ManifestsService, refs []*manifestsapi.Ref, timeout time.Duration, stderr io.Writer) error {
	deadline := time.Now().Add(timeout)
	for {
		var notReady []string
		for _, r := range refs {
			resp, err := svc.Get(ctx, &manifestsapi.GetRequest{Namespace: r.Namespace, Kind: r.Kind, Name: r.Name})
			if err != nil {
				notReady = append(notReady, fmt.Sprintf("%s: %v", refString(r), err))
				continue
			}
			for _, o := range resp.Objects {
				if ok, why := readiness(o); !ok {
					notReady = append(notReady, fmt.Sprintf("%s: %s", refString(r), why))
				}
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			slices.Sort(notReady)
			for _, n := range notReady {
				fmt.Fprintln(stderr, "not ready:", n)
			}
			return &exitError{code: 2, err: fmt.Errorf("%d object(s) not ready after %s", len(notReady), timeout)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
