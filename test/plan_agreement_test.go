package test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/api/server"
	"berth.dev/berth/controller"
	"berth.dev/berth/desired"
	"berth.dev/berth/network"
	"berth.dev/berth/node"
	"berth.dev/berth/node/nodetest"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// TestPlanAgreement: for each case, what `berth diff` prints is what the
// reconcilers then do. Both sides run in process over the real
// desired.Store, APISource and observed.DB, with nodetest's node in place
// of shims and runc (no root, milliseconds): berth apply's and diff's
// server (api/server.Manifests), the controller's reconcile of every key
// until nothing more happens, and the node calls it made read back as the
// verbs diff uses.
func TestPlanAgreement(t *testing.T) {
	t.Parallel()
	const (
		image = `apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox}
spec: {ref: "127.0.0.1:5000/busybox:1"}
`
		imageAlways = `apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox}
spec: {ref: "127.0.0.1:5000/busybox:1", pullPolicy: Always, platform: linux/amd64}
`
		container = `---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: web}
spec: {image: busybox, command: [httpd, -f]}
`
		containerEnv = `---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: web}
spec: {image: busybox, command: [httpd, -f], env: [{name: A, value: "1"}]}
`
	)
	netw := func(mtu string) string {
		return "apiVersion: berth.dev/v1\nkind: Network\nmetadata: {name: lan}\nspec: {subnet: 10.77.0.0/24, mtu: " + mtu + "}\n---\n"
	}
	const containerOn = `---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: web}
spec: {image: busybox, command: [httpd, -f], network: lan}
`
	task := func(name, state, policy string) string {
		return "---\napiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: " + name +
			"}\nspec: {container: web, state: " + state + ", restartPolicy: " + policy + "}\n"
	}
	running := image + container + task("web", "Running", "Always")
	for _, tc := range []struct {
		name   string
		before string                // applied and converged first ("" for a fresh node)
		node   func(*agreeRig) error // then changed behind the controller's back
		after  string                // given to diff, then applied
		want   map[string][]string   // kind/name → verbs, the same for both
	}{
		{name: "fresh node", after: running,
			want: map[string][]string{"Image/busybox": {"pull"}, "Container/web": {"create"}, "Task/web": {"start"}}},
		{name: "converged", before: running, after: running, want: map[string][]string{}},
		{name: "fresh node, Paused", after: image + container + task("web", "Paused", "Always"),
			want: map[string][]string{"Image/busybox": {"pull"}, "Container/web": {"create"}, "Task/web": {"start", "pause"}}},
		{name: "fresh node, Stopped", after: image + container + task("web", "Stopped", "Always"),
			want: map[string][]string{"Image/busybox": {"pull"}, "Container/web": {"create"}}},
		{name: "created, not started", before: image + container + task("web", "Stopped", "Always"), after: running,
			node: func(r *agreeRig) error {
				_, err := r.node.CreateTask(r.ctx, "default", "web", node.Stdio{})
				r.node.Calls()
				return err
			},
			want: map[string][]string{"Task/web": {"start"}}},
		{name: "container spec changed", before: running, after: image + containerEnv + task("web", "Running", "Always"),
			want: map[string][]string{"Container/web": {"recreate"}, "Task/web": {"restart"}}},
		{name: "stop", before: running, after: image + container + task("web", "Stopped", "Always"),
			want: map[string][]string{"Task/web": {"stop"}}},
		{name: "pause", before: running, after: image + container + task("web", "Paused", "Always"),
			want: map[string][]string{"Task/web": {"pause"}}},
		{name: "resume", before: image + container + task("web", "Paused", "Always"), after: running,
			want: map[string][]string{"Task/web": {"resume"}}},
		{name: "exited, Always", before: running, after: running,
			node: func(r *agreeRig) error { return r.node.Exit(r.ctx, "default", "web", 1) },
			want: map[string][]string{"Task/web": {"restart"}}},
		{name: "exited, Never", before: image + container + task("web", "Running", "Never"), after: image + container + task("web", "Running", "Never"),
			node: func(r *agreeRig) error { return r.node.Exit(r.ctx, "default", "web", 1) },
			want: map[string][]string{}},
		{name: "exited, spec.restartPolicy now Always", before: image + container + task("web", "Running", "Never"), after: running,
			node: func(r *agreeRig) error { return r.node.Exit(r.ctx, "default", "web", 1) },
			want: map[string][]string{"Task/web": {"restart"}}},
		{name: "snapshot removed", before: running, after: running,
			node: func(r *agreeRig) error { r.node.RemoveSnapshot("default/web"); return nil },
			want: map[string][]string{"Container/web": {"recreate"}, "Task/web": {"restart"}}},
		{name: "Always, moved tag", before: imageAlways + container + task("web", "Running", "Always"),
			after: strings.Replace(imageAlways, "linux/amd64", "linux/arm64", 1) + container + task("web", "Running", "Always"),
			node: func(r *agreeRig) error {
				r.node.SetDigest("127.0.0.1:5000/busybox:1", digest.FromString("moved"))
				return nil
			},
			want: map[string][]string{"Image/busybox": {"pull"}, "Container/web": {"recreate"}, "Task/web": {"restart"}}},
		{name: "container in use", before: running, after: running + task("a-first", "Running", "Always"),
			want: map[string][]string{"Task/web": {"wait"}}},
		{name: "fresh node, declared Network", after: netw("1400") + image + containerOn + task("web", "Running", "Always"),
			want: map[string][]string{"Network/lan": {"create"}, "Image/busybox": {"pull"}, "Container/web": {"create"}, "Task/web": {"start"}}},
		{name: "Network changed", before: netw("1400") + image + containerOn + task("web", "Running", "Always"),
			after: netw("1300") + image + containerOn + task("web", "Running", "Always"),
			want:  map[string][]string{"Network/lan": {"recreate"}, "Container/web": {"recreate"}, "Task/web": {"restart"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newAgreeRig(t)
			if tc.before != "" {
				r.apply(tc.before)
				r.converge()
			}
			if tc.node != nil {
				if err := tc.node(r); err != nil {
					t.Fatal(err)
				}
			}
			printed := r.diff(tc.after)
			r.apply(tc.after)
			done := r.converge()
			if diff := cmp.Diff(tc.want, printed); diff != "" {
				t.Errorf("diff printed (-want +got):\n%s", diff)
			}
			// Wait is no change on the node: the Task is Degraded instead.
			for k, verbs := range printed {
				if slices.Equal(verbs, []string{"wait"}) {
					if _, ran := done[k]; ran {
						t.Errorf("%s: diff said wait, the reconcile did %v", k, done[k])
					}
					st, err := r.db.GetStatus(r.ctx, keyOf(k))
					if c, _ := st.Status.Condition(spec.ConditionDegraded); err != nil || c.Reason != "ContainerInUse" {
						t.Errorf("%s: diff said wait; status %+v, %v", k, st.Status.Conditions, err)
					}
					delete(printed, k)
				}
			}
			if diff := cmp.Diff(printed, done); diff != "" {
				t.Errorf("printed (-) and done (+) disagree:\n%s", diff)
			}
			if again := r.diff(tc.after); len(again) > 0 && !onlyWaits(again) {
				t.Errorf("after the reconcile diff still prints %v", again)
			}
		})
	}
}

func onlyWaits(m map[string][]string) bool {
	for _, v := range m {
		if !slices.Equal(v, []string{"wait"}) {
			return false
		}
	}
	return true
}

func keyOf(s string) spec.Key {
	kind, name, _ := strings.Cut(s, "/")
	return spec.Key{Namespace: spec.DefaultNamespace, Kind: spec.Kind(kind), Name: name}
}

type agreeRig struct {
	t     *testing.T
	ctx   context.Context
	db    *observed.DB
	store *desired.Store
	node  *nodetest.Node
	nets  *fakeNetworks
	srv   *server.Manifests
	ctrl  *controller.Controller
}

func newAgreeRig(t *testing.T) *agreeRig {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bdb.Close() })
	db, err := observed.New(bdb)
	if err != nil {
		t.Fatal(err)
	}
	store := desired.NewStore()
	api, err := desired.OpenAPISource(bdb, store)
	if err != nil {
		t.Fatal(err)
	}
	n := nodetest.New(db)
	nets := &fakeNetworks{nets: map[string]network.Network{}}
	return &agreeRig{t: t, ctx: context.Background(), db: db, store: store, node: n, nets: nets,
		srv: &server.Manifests{Desired: store, API: api, DB: db, Recent: observed.NewRecent(16), Node: n, Snapshots: n},
		ctrl: controller.New(controller.Options{Desired: store, Node: n, Networks: nets, DB: db, Bus: observed.NewBus(),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBackoff: time.Minute})}
}

// apply is berth apply of manifests (one file, the whole set: pruned).
func (r *agreeRig) apply(manifests string) {
	r.t.Helper()
	if _, err := r.srv.Apply(r.ctx, &manifestsapi.ApplyRequest{Data: []byte(manifests), File: "app.yaml", Dir: "/srv",
		Prune: true, Applyset: "agree"}); err != nil {
		r.t.Fatalf("apply: %v", err)
	}
}

// diff is berth diff of manifests: kind/name → the verbs printed
// (conflict and update, which are no node action, left out).
func (r *agreeRig) diff(manifests string) map[string][]string {
	r.t.Helper()
	resp, err := r.srv.Diff(r.ctx, &manifestsapi.DiffRequest{Data: []byte(manifests), File: "app.yaml", Dir: "/srv", Applyset: "agree"})
	if err != nil {
		r.t.Fatalf("diff: %v", err)
	}
	out := map[string][]string{}
	for _, d := range resp.Diffs {
		for _, a := range d.Actions {
			if a.Verb != "conflict" && a.Verb != "update" {
				k := a.Ref.Kind + "/" + a.Ref.Name
				out[k] = append(out[k], a.Verb)
			}
		}
	}
	return out
}

// converge reconciles every key (Images, Containers, Tasks) until a round
// calls the node no more, and reads the calls back as diff's verbs.
func (r *agreeRig) converge() map[string][]string {
	r.t.Helper()
	calls := map[string][]string{}
	// Whether each Task's task was there before anything was done: a
	// start then is a restart (its Container's recreate or its exit ended
	// the old one).
	existed := map[string]bool{}
	for _, e := range r.store.List(desired.Filter{Kind: spec.KindTask}) {
		ts, _ := e.Object.TaskSpec()
		existed["Task/"+e.Key.Name] = r.node.Phase("default", ts.Container) != ""
	}
	for round := 0; round < 8; round++ {
		quiet := true
		for _, e := range sortedEntries(r.store) {
			k := string(e.Key.Kind) + "/" + e.Key.Name
			if _, err := r.ctrl.Reconcile(r.ctx, e.Key); err != nil {
				r.t.Fatalf("reconcile %s: %v", e.Key, err)
			}
			if cs := append(r.node.Calls(), r.nets.takeCalls()...); len(cs) > 0 {
				quiet = false
				calls[k] = append(calls[k], cs...)
			}
		}
		if quiet {
			break
		}
		if round == 7 {
			r.t.Fatalf("no convergence: %v", calls)
		}
	}
	out := map[string][]string{}
	for k, cs := range calls {
		out[k] = verbsOf(keyOf(k).Kind, cs, existed[k])
	}
	return out
}

func sortedEntries(s *desired.Store) []desired.Entry {
	es := s.List(desired.Filter{})
	slices.SortStableFunc(es, func(a, b desired.Entry) int {
		return slices.Index(spec.Kinds, a.Key.Kind) - slices.Index(spec.Kinds, b.Key.Kind)
	})
	return es
}

// verbsOf reads node calls back as the verb diff would print for them.
func verbsOf(kind spec.Kind, calls []string, taskExisted bool) []string {
	has := func(verb string) bool {
		return slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, verb+" ") })
	}
	var out []string
	switch {
	case has("pull"), has("import"):
		out = append(out, "pull")
	case has("unpack"):
		out = append(out, "unpack")
	}
	switch {
	case has("write-network"):
		out = append(out, "create")
	case has("rewrite-network"):
		out = append(out, "recreate")
	}
	switch {
	case has("delete-container"):
		out = append(out, "recreate") // a Container's: it makes it again
	case has("create-container"):
		out = append(out, "create")
	}
	if kind != spec.KindTask {
		return out // a Container's kill and task delete are its recreate's
	}
	switch {
	case has("create-task") && taskExisted:
		out = append(out, "restart") // a new task in place of the one there was
	case has("start"):
		out = append(out, "start")
	case has("kill"):
		out = append(out, "stop")
	case has("resume"):
		out = append(out, "resume")
	}
	if has("pause") {
		out = append(out, "pause")
	}
	return out
}

// fakeNetworks stands in for network.Manager (controller.Networks): it
// logs a write only when it changes what is on the node, as EnsureNetwork
// rewriting an unchanged conflist changes nothing.
type fakeNetworks struct {
	mu    sync.Mutex
	nets  map[string]network.Network
	calls []string
}

func (f *fakeNetworks) EnsureNetwork(ns, name string, s network.Spec) (network.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := ns + "/" + name
	old, ok := f.nets[k]
	switch {
	case !ok:
		f.calls = append(f.calls, "write-network "+k)
	case old.Spec != s:
		f.calls = append(f.calls, "rewrite-network "+k)
	}
	n := network.Network{Name: name, Namespace: ns, CNIName: "berth-" + name, Spec: s}
	f.nets[k] = n
	return n, nil
}

func (f *fakeNetworks) RemoveNetwork(ns, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nets, ns+"/"+name)
	f.calls = append(f.calls, "remove-network "+ns+"/"+name)
	return nil
}

func (f *fakeNetworks) InUse(string, string) []string { return nil }

func (f *fakeNetworks) Builtin() network.Network {
	return network.Network{Name: network.BuiltinNetwork, Spec: network.Spec{Subnet: "10.88.0.0/16"}}
}

func (f *fakeNetworks) Networks() ([]network.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []network.Network
	for _, n := range f.nets {
		out = append(out, n)
	}
	return out, nil
}

func (f *fakeNetworks) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}
