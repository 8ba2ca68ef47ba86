package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/spec"
	"github.com/spf13/cobra"
)

// parseKindArg maps what people type (task, tasks, Task, all) to a kind;
// "" is every kind.
func parseKindArg(s string) (string, error) {
	k, err := spec.ParseKind(s) // the API's rule too
	return string(k), err
}

// listedObject is an object as get prints it in JSON and YAML: its
// manifest with status, plus where it came from.
type listedObject struct {
	obj        map[string]any
	source     string
	generation int64
	view       objectView
}

// MarshalJSON flattens source and generation into the object so -o json
// is the manifest a user could apply again, plus two fields they can
// ignore, rather than a wrapper they must unwrap.
func (l listedObject) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range l.obj {
		m[k] = v
	}
	m["source"] = l.source
	m["generation"] = l.generation
	return json.Marshal(m)
}

// decodeObjects decodes each object twice: as a generic map, to print
// every field berthd sent even ones this CLI's spec does not know (a
// newer berthd), and as typed, for the table's columns.
func decodeObjects(objs []*manifestsapi.Object) ([]listedObject, error) {
	var out []listedObject
	for _, o := range objs {
		l := listedObject{source: o.Source, generation: o.Generation}
		if err := json.Unmarshal(o.Json, &l.obj); err != nil {
			return nil, fmt.Errorf("decode object: %w", err)
		}
		if err := json.Unmarshal(o.Json, &l.view); err != nil {
			return nil, fmt.Errorf("decode object: %w", err)
		}
		out = append(out, l)
	}
	return out, nil
}

// printSourceErrors puts every manifest source's error on stderr: a file
// that does not parse keeps its last good objects, so get alone would
// hide that it is broken.
func printSourceErrors(ctx context.Context, svc manifestsapi.ManifestsService, w io.Writer) {
	resp, err := svc.Sources(ctx, &manifestsapi.SourcesRequest{})
	if err != nil {
		return
	}
	for _, s := range resp.Sources {
		if s.Error != "" {
			fmt.Fprintf(w, "error: %s%s\n", s.Error, sinceText(s.ErrorTime.AsTime(), s.ErrorTime != nil))
		}
	}
}

// sourceView is a manifest source as -o json/yaml prints it.
type sourceView struct {
	Name      string    `json:"name"`
	Revision  string    `json:"revision,omitempty"`
	Objects   int32     `json:"objects"`
	Error     string    `json:"error,omitempty"`
	ErrorTime time.Time `json:"errorTime,omitzero"`
}

// getSources lists the manifest sources: the watched directory with the
// revision in force (set hash, git commit), each file, and the API.
func getSources(cmd *cobra.Command, g *globals, output string) error {
	ctx := cmd.Context()
	svc, done, err := g.manifestsClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := svc.Sources(ctx, &manifestsapi.SourcesRequest{})
	if err != nil {
		return err
	}
	var views []sourceView
	for _, s := range resp.Sources {
		v := sourceView{Name: s.Name, Revision: s.Revision, Objects: s.Objects, Error: s.Error}
		if s.ErrorTime != nil {
			v.ErrorTime = s.ErrorTime.AsTime()
		}
		views = append(views, v)
	}
	return printList(cmd.OutOrStdout(), output, views, []string{"SOURCE", "OBJECTS", "REVISION", "ERROR"}, func(v sourceView) []string {
		return []string{v.Name, fmt.Sprint(v.Objects), orDash(v.Revision), orDash(v.Error)}
	})
}

// sinceText says what a broken source means for the user: the objects
// shown are its last good ones, not what the file says now.
func sinceText(t time.Time, ok bool) string {
	if !ok || t.IsZero() {
		return ""
	}
	return fmt.Sprintf(" (since %s; its last good objects stay in force)", t.Local().Format(time.RFC3339))
}

// newGetCmd lists what is declared (desired) with its status (observed),
// as kubectl get does. `get sources` is a verb of its own because sources
// are not objects but where objects come from.
func newGetCmd(g *globals) *cobra.Command {
	var (
		output, selector string
		all, watch       bool
		watchEvents      bool
	)
	cmd := &cobra.Command{
		Use:   "get KIND [NAME] [-l SELECTOR] [-w]",
		Short: "List declared objects with their status (KIND: images, containers, tasks, all; or sources)",
		Long: `List declared objects with their status (KIND: images, containers, tasks, all; or sources).

-l SELECTOR keeps the objects whose labels match (kubectl syntax:
app=web,tier!=db, app in (a,b), !app); berthd evaluates it.

-w prints the table, then one row each time an object changes (its
readiness, state, pid, restarts, exit), as kubectl get -w does, until
interrupted. An object no longer declared is printed once more with
READY "Deleted". -w -o json prints each object as one line of JSON
instead (jq reads the stream), once and again whenever it changes; with
--output-watch-events each line is {"type": "ADDED"|"MODIFIED"|"DELETED",
"object": ...}, as kubectl's.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a := strings.ToLower(args[0]); a == "source" || a == "sources" {
				return getSources(cmd, g, output)
			}
			kind, err := parseKindArg(args[0])
			if err != nil {
				return err
			}
			req := &manifestsapi.GetRequest{Namespace: g.namespace, AllNamespaces: all, Kind: kind, Selector: selector}
			if len(args) == 2 {
				req.Name = args[1]
			}
			if output != "table" && output != "" && output != "wide" && output != "json" && output != "yaml" {
				return fmt.Errorf("unknown output format %q (table, wide, json, yaml)", output)
			}
			if watch && output == "yaml" {
				return fmt.Errorf("-w prints tables or JSON lines: -o yaml is not supported with it")
			}
			if watchEvents && !(watch && output == "json") {
				return fmt.Errorf("--output-watch-events needs -w -o json")
			}
			ctx := cmd.Context()
			svc, done, err := g.manifestsClient(ctx)
			if err != nil {
				return err
			}
			defer done()
			resp, err := svc.Get(ctx, req)
			// Printed before the error check: a get that finds nothing
			// because the file declaring it is broken should say so.
			printSourceErrors(ctx, svc, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			objs, err := decodeObjects(resp.Objects)
			if err != nil {
				return err
			}
			if (output == "json" || output == "yaml") && !watch {
				// One named object prints as that object, not a list
				// of one, so `get image x -o json | jq .status` works.
				if req.Name != "" && req.Selector == "" && len(objs) == 1 {
					return printObject(cmd.OutOrStdout(), output, objs[0])
				}
				return printList(cmd.OutOrStdout(), output, objs, nil, nil)
			}
			// An empty result is not an error (exit 0), but says so
			// on stderr so an empty stdout is not mistaken for a hang.
			if len(objs) == 0 && output != "json" {
				where := "namespace " + g.namespace
				if all {
					where = "any namespace"
				}
				if selector != "" {
					where += " matching " + selector
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "no objects declared in %s\n", where)
			}
			w := &watchPrinter{out: cmd.OutOrStdout(), withNS: all, wide: output == "wide", last: map[string][]string{},
				jsonLines: output == "json", events: watchEvents}
			if err := w.printAll(kind, objs); err != nil {
				return err
			}
			if !watch {
				return nil
			}
			return w.watch(ctx, g, svc, req)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|wide|json|yaml (wide adds containers' network, addresses and ports)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector (app=web,tier!=db): only matching objects")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "after the list, print a row each time an object changes")
	cmd.Flags().BoolVar(&watchEvents, "output-watch-events", false, "with -w -o json: each line is {type: ADDED|MODIFIED|DELETED, object}")
	return cmd
}

// tableKinds are the kinds a listing of kind shows, in their order.
//
// The order is that of dependencies (a Network before the Containers on
// it, an Image before its Containers, a Container before its Task), so a
// listing reads top-down in the order things become Ready.
func tableKinds(kind string) []string {
	if kind != "" {
		return []string{kind}
	}
	return []string{string(spec.KindNetwork), string(spec.KindImage), string(spec.KindContainer), string(spec.KindTask)}
}

// tableRows are one kind's header and a row per object.
//
// Each kind has its own columns because what one checks differs: an
// Image's digest, a Container's image, a Task's state, pid, restarts and
// exit. Rows are built as strings first so the watch printer can compare
// a new row with the one it printed last and skip unchanged ones.
func tableRows(kind spec.Kind, objs []listedObject, withNS, wide bool) ([]string, [][]string) {
	var header []string
	switch kind {
	case spec.KindImage:
		header = []string{"NAME", "READY", "DIGEST", "AGE", "SOURCE"}
	case spec.KindContainer:
		header = []string{"NAME", "READY", "IMAGE", "AGE", "SOURCE"}
		if wide {
			header = []string{"NAME", "READY", "IMAGE", "NETWORK", "ADDRESSES", "PORTS", "AGE", "SOURCE"}
		}
	case spec.KindTask:
		header = []string{"NAME", "READY", "STATE", "PID", "RESTARTS", "EXIT", "AGE", "SOURCE"}
	case spec.KindNetwork:
		header = []string{"NAME", "READY", "SUBNET", "BRIDGE", "CONTAINERS", "AGE", "SOURCE"}
	}
	if withNS {
		header = append([]string{"NAMESPACE"}, header...)
	}
	var rows [][]string
	for _, o := range objs {
		st := o.view.Status
		// AGE is since Ready last changed, not since creation: what one
		// wants to know of a declared object is how long it has been in
		// its current state.
		ready, reason := readyColumn(st)
		row := []string{o.view.Metadata.Name, ready}
		switch kind {
		case spec.KindImage:
			digest := "-"
			if st.ImageStatus != nil && st.Digest != "" {
				digest = shortDigest(st.Digest)
			}
			row = append(row, digest, age(reason))
		case spec.KindContainer:
			var cs spec.ContainerSpec
			// A spec that does not decode (a newer berthd's) shows empty
			// columns rather than failing the whole listing.
			_ = json.Unmarshal(o.view.Spec, &cs)
			row = append(row, cs.Image)
			if wide {
				row = append(row, networkColumns(cs, st)...)
			}
			row = append(row, age(reason))
		case spec.KindNetwork:
			var ns spec.NetworkSpec
			_ = json.Unmarshal(o.view.Spec, &ns)
			bridge, used := "-", "0"
			if st.NetworkStatus != nil {
				bridge, used = orDash(st.Bridge), strconv.Itoa(len(st.UsedBy))
			}
			row = append(row, ns.Subnet, bridge, used, age(reason))
		case spec.KindTask:
			ts := spec.TaskStatus{}
			if st.TaskStatus != nil {
				ts = *st.TaskStatus
			}
			pid, exit := "-", "-"
			if ts.Pid > 0 {
				pid = strconv.Itoa(ts.Pid)
			}
			// An exit code only once the task has finished at least
			// once: 0 before would read as a clean exit.
			if !ts.FinishedAt.IsZero() {
				exit = strconv.Itoa(ts.ExitCode)
				if ts.OOMKilled {
					exit += " (OOMKilled)"
				}
			}
			// A Task's AGE is since its task started, when it did: its
			// Ready condition changes less often than its runs.
			started := reason
			if !ts.StartedAt.IsZero() {
				started = ts.StartedAt
			}
			row = append(row, orDash(string(ts.State)), pid, strconv.Itoa(ts.RestartCount), exit, age(started))
		}
		row = append(row, sourceColumn(o.source))
		if withNS {
			row = append([]string{o.view.Metadata.Namespace}, row...)
		}
		rows = append(rows, row)
	}
	return header, rows
}

// readyColumn is "True", or "False (Reason)"; it also returns when
// readiness last changed.
//
// The reason is shown only when not Ready: "True (Running)" would say
// nothing more than "True".
func readyColumn(st spec.Status) (string, time.Time) {
	c, ok := st.Condition(spec.ConditionReady)
	if !ok {
		return "Unknown", time.Time{}
	}
	if c.Status == spec.ConditionTrue || c.Reason == "" {
		return string(c.Status), c.LastTransitionTime
	}
	return fmt.Sprintf("%s (%s)", c.Status, c.Reason), c.LastTransitionTime
}

// shortDigest is the first 12 hex digits, as docker prints image IDs:
// enough to tell images apart on one node.
func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

// sourceColumn shows a file's base name: the watched directory is the
// same for every file, and the full path would crowd the table.
func sourceColumn(s string) string {
	if s == "" || s == "api" {
		return orDash(s)
	}
	return filepath.Base(s)
}

// age prints how long ago t was, briefly: 45s, 3m, 5h, 2d.
//
// Hours up to two days, since "30h" reads better than "1d" for something
// that happened yesterday evening.
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// networkColumns are a Container's NETWORK, ADDRESSES and PORTS: the
// network it asked for, and the addresses and ports observed.
//
// The network shown is the one the container was attached to, as
// observed; the spec's only while it is not attached, so the column says
// where the container is, not merely where it was asked to be.
func networkColumns(cs spec.ContainerSpec, st spec.Status) []string {
	netw, addrs, ports := string(cs.Network), "-", "-"
	if st.ContainerStatus != nil {
		if st.Network != "" {
			netw = st.Network
		}
		if len(st.Addresses) > 0 {
			addrs = strings.Join(st.Addresses, ",")
		}
		if len(st.Ports) > 0 {
			ports = formatPorts(st.Ports)
		}
	}
	return []string{orDash(netw), addrs, ports}
}

// formatPorts writes published ports as `berth run -p` takes them:
// [HOSTIP:]HOSTPORT->CONTAINERPORT/PROTO.
func formatPorts(ps []spec.Port) string {
	var out []string
	for _, p := range ps {
		s := fmt.Sprintf("%d->%d/%s", p.HostPort, p.ContainerPort, p.Protocol)
		if p.HostIP != "" {
			s = p.HostIP + ":" + s
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}
