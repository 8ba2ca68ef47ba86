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
	switch strings.ToLower(s) {
	case "", "all":
		return "", nil
	case "image", "images", "img":
		return string(spec.KindImage), nil
	case "container", "containers", "ctr":
		return string(spec.KindContainer), nil
	case "task", "tasks":
		return string(spec.KindTask), nil
	case "network", "networks", "net":
		return string(spec.KindNetwork), nil
	}
	return "", fmt.Errorf("kind %q is not one of network(s), image(s), container(s), task(s), all", s)
}

// listedObject is an object as get prints it in JSON and YAML: its
// manifest with status, plus where it came from.
type listedObject struct {
	obj        map[string]any
	source     string
	generation int64
	view       objectView
}

func (l listedObject) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range l.obj {
		m[k] = v
	}
	m["source"] = l.source
	m["generation"] = l.generation
	return json.Marshal(m)
}

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

func sinceText(t time.Time, ok bool) string {
	if !ok || t.IsZero() {
		return ""
	}
	return fmt.Sprintf(" (since %s; its last good objects stay in force)", t.Local().Format(time.RFC3339))
}

func newGetCmd(g *globals) *cobra.Command {
	var (
		output, selector string
		all, watch       bool
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
READY "Deleted".`,
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
			if watch && (output == "json" || output == "yaml") {
				return fmt.Errorf("-w prints tables: -o %s is not supported with it", output)
			}
			ctx := cmd.Context()
			svc, done, err := g.manifestsClient(ctx)
			if err != nil {
				return err
			}
			defer done()
			resp, err := svc.Get(ctx, req)
			printSourceErrors(ctx, svc, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			objs, err := decodeObjects(resp.Objects)
			if err != nil {
				return err
			}
			if output == "json" || output == "yaml" {
				if req.Name != "" && req.Selector == "" && len(objs) == 1 {
					return printObject(cmd.OutOrStdout(), output, objs[0])
				}
				return printList(cmd.OutOrStdout(), output, objs, nil, nil)
			}
			if len(objs) == 0 {
				where := "namespace " + g.namespace
				if all {
					where = "any namespace"
				}
				if selector != "" {
					where += " matching " + selector
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "no objects declared in %s\n", where)
			}
			w := &watchPrinter{out: cmd.OutOrStdout(), withNS: all, wide: output == "wide", last: map[string][]string{}}
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
	return cmd
}

// tableKinds are the kinds a listing of kind shows, in their order.
func tableKinds(kind string) []string {
	if kind != "" {
		return []string{kind}
	}
	return []string{string(spec.KindNetwork), string(spec.KindImage), string(spec.KindContainer), string(spec.KindTask)}
}

// tableRows are one kind's header and a row per object.
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
			if !ts.FinishedAt.IsZero() {
				exit = strconv.Itoa(ts.ExitCode)
				if ts.OOMKilled {
					exit += " (OOMKilled)"
				}
			}
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

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

func sourceColumn(s string) string {
	if s == "" || s == "api" {
		return orDash(s)
	}
	return filepath.Base(s)
}

// age prints how long ago t was, briefly: 45s, 3m, 5h, 2d.
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
