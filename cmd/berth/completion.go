package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	ctrapi "berth.dev/berth/api/containers/v1"
	imagesapi "berth.dev/berth/api/images/v1"
	manifestsapi "berth.dev/berth/api/manifests/v1"
	nsapi "berth.dev/berth/api/namespaces/v1"
	netapi "berth.dev/berth/api/networks/v1"
	snapi "berth.dev/berth/api/snapshots/v1"
	tasksapi "berth.dev/berth/api/tasks/v1"
	"github.com/containerd/ttrpc"
	"github.com/spf13/cobra"
)

// A lister asks berthd for the names a shell may complete. It is called
// with a short deadline: a slow or absent berthd completes nothing rather
// than hanging the shell.
type lister func(ctx context.Context, c *ttrpc.Client, ns string) []string

// completeTaskIDs lists tasks, not containers, for verbs that need a live
// task (kill, pause, exec): completing a container without one would only
// lead to an error.
func completeTaskIDs(ctx context.Context, c *ttrpc.Client, ns string) []string {
	resp, err := tasksapi.NewTasksClient(c).List(ctx, &tasksapi.ListTasksRequest{Namespace: ns})
	if err != nil {
		return nil
	}
	var ids []string
	for _, t := range resp.Tasks {
		ids = append(ids, t.Id)
	}
	return ids
}

func completeContainerIDs(ctx context.Context, c *ttrpc.Client, ns string) []string {
	resp, err := ctrapi.NewContainersClient(c).List(ctx, &ctrapi.ListContainersRequest{Namespace: ns})
	if err != nil {
		return nil
	}
	var ids []string
	for _, x := range resp.Containers {
		ids = append(ids, x.Id)
	}
	return ids
}

func completeImageRefs(ctx context.Context, c *ttrpc.Client, ns string) []string {
	resp, err := imagesapi.NewImagesClient(c).List(ctx, &imagesapi.ListImagesRequest{Namespace: ns})
	if err != nil {
		return nil
	}
	var refs []string
	for _, im := range resp.Images {
		refs = append(refs, im.Name)
	}
	return refs
}

func completeNetworks(ctx context.Context, c *ttrpc.Client, ns string) []string {
	resp, err := netapi.NewNetworksClient(c).List(ctx, &netapi.ListNetworksRequest{Namespace: ns})
	if err != nil {
		return nil
	}
	var names []string
	for _, n := range resp.Networks {
		names = append(names, n.Name)
	}
	return names
}

func completeNamespaces(ctx context.Context, c *ttrpc.Client, _ string) []string {
	resp, err := nsapi.NewNamespacesClient(c).List(ctx, &nsapi.ListNamespacesRequest{})
	if err != nil {
		return nil
	}
	var names []string
	for _, n := range resp.Namespaces {
		names = append(names, n.Name)
	}
	return names
}

func completeSnapshots(ctx context.Context, c *ttrpc.Client, ns string) []string {
	resp, err := snapi.NewSnapshotsClient(c).List(ctx, &snapi.ListSnapshotsRequest{Namespace: ns})
	if err != nil {
		return nil
	}
	var keys []string
	for _, i := range resp.Info {
		keys = append(keys, i.Name)
	}
	return keys
}

// objectNames lists the declared objects of kind (empty: every kind).
//
// Names come from the declared objects (the desired state), not from the
// node: `berth get task <TAB>` completes what one can get.
func objectNames(kind string) lister {
	return func(ctx context.Context, c *ttrpc.Client, ns string) []string {
		resp, err := manifestsapi.NewManifestsClient(c).Get(ctx, &manifestsapi.GetRequest{Namespace: ns, Kind: kind})
		if err != nil {
			return nil
		}
		var names []string
		for _, o := range resp.Objects {
			var v objectView
			if json.Unmarshal(o.Json, &v) == nil {
				names = append(names, v.Metadata.Name)
			}
		}
		return names
	}
}

// completeDeadline bounds one completion's talk with berthd: a shell
// waits for it at every Tab.
const completeDeadline = time.Second

// complete runs l against berthd and keeps what starts with prefix; with
// berthd down or slow it completes nothing and prints nothing.
func (g *globals) complete(cmd *cobra.Command, l lister, prefix string) []string {
	ctx, cancel := context.WithTimeout(cmd.Context(), completeDeadline)
	defer cancel()
	saved := g.timeout
	g.timeout = completeDeadline / 2
	c, err := g.dial(ctx)
	g.timeout = saved
	if err != nil {
		return nil
	}
	defer c.Close()
	var out []string
	for _, s := range l(ctx, c, g.namespace) {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// completeFirst completes the first argument with l and nothing after it
// (the rest is a command line for the container).
//
// Nothing after it is completed: the rest of `berth run IMAGE ID CMD...`
// is the container's command line, which no lister knows.
func completeFirst(g *globals, l lister) cobra.CompletionFunc {
	return completeNth(g, 0, l)
}

// completeNth completes argument n (0-based) with l.
func completeNth(g *globals, n int, l lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) != n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return g.complete(cmd, l, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeEach completes every argument with l (ID... commands), leaving
// out the ones already given.
func completeEach(g *globals, l lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []string
		for _, s := range g.complete(cmd, l, toComplete) {
			if !slices.Contains(args, s) {
				out = append(out, s)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeAfter completes every argument from position n on with l (the
// NAME... after image export's OUT); before it, files.
func completeAfter(g *globals, n int, l lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) < n {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return completeEach(g, l)(cmd, args[n:], toComplete)
	}
}

// kindArgs complete a KIND argument (get, describe, delete).
//
// Only the plural forms are offered; the singular and short forms are
// accepted but would clutter the list.
var kindArgs = []string{"networks", "images", "containers", "tasks", "all"}

// kindThenNames completes KIND, then the names of that kind's objects
// (once with many false, as often as asked with many true); extra are
// more words for KIND (get's "sources").
func kindThenNames(g *globals, many bool, extra ...string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			var out []string
			for _, k := range append(append([]string(nil), kindArgs...), extra...) {
				if strings.HasPrefix(k, toComplete) {
					out = append(out, k)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
		if len(args) > 1 && !many {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		kind, err := parseKindArg(args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeEach(g, objectNames(kind))(cmd, args[1:], toComplete)
	}
}

// registerCompletions gives the commands that take object names, IDs or
// image references a completion that asks berthd for them. It is kept in
// one table, by command path, rather than in every command's literal.
func registerCompletions(root *cobra.Command, g *globals) {
	table := map[string]cobra.CompletionFunc{
		"run":              completeNth(g, 0, completeImageRefs),
		"container create": completeNth(g, 0, completeImageRefs),
		"container info":   completeFirst(g, completeContainerIDs),
		"container rm":     completeEach(g, completeContainerIDs),
		"task start":       completeFirst(g, completeContainerIDs),
		"task kill":        completeFirst(g, completeTaskIDs),
		"task pause":       completeFirst(g, completeTaskIDs),
		"task resume":      completeFirst(g, completeTaskIDs),
		"task metrics":     completeFirst(g, completeTaskIDs),
		"task ps":          completeFirst(g, completeTaskIDs),
		"task rm":          completeEach(g, completeTaskIDs),
		"task exec":        completeFirst(g, completeTaskIDs),
		"exec":             completeFirst(g, completeTaskIDs),
		"logs":             completeFirst(g, completeContainerIDs),
		"stats":            completeEach(g, completeTaskIDs),
		"image inspect":    completeFirst(g, completeImageRefs),
		"image unpack":     completeFirst(g, completeImageRefs),
		"image rm":         completeEach(g, completeImageRefs),
		"get":              kindThenNames(g, false, "sources"),
		"describe":         kindThenNames(g, false),
		"delete":           kindThenNames(g, true),
		"image export":     completeAfter(g, 1, completeImageRefs),
		"image push":       completeFirst(g, completeImageRefs),
		"image tag":        completeFirst(g, completeImageRefs),
		"container commit": completeFirst(g, completeContainerIDs),
		"network inspect":  completeFirst(g, completeNetworks),
		"network rm":       completeEach(g, completeNetworks),
		"namespace rm":     completeEach(g, completeNamespaces),
		"snapshot info":    completeFirst(g, completeSnapshots),
		"snapshot rm":      completeEach(g, completeSnapshots),
		"snapshot usage":   completeFirst(g, completeSnapshots),
		"snapshot diff":    completeEach(g, completeSnapshots),
	}
	_ = root.RegisterFlagCompletionFunc("namespace", func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return g.complete(cmd, completeNamespaces, toComplete), cobra.ShellCompDirectiveNoFileComp
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		if fn, ok := table[path]; ok && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = fn
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
