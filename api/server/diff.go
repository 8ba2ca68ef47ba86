package server

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/content/reference"
	"berth.dev/berth/desired"
	"berth.dev/berth/plan"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"sigs.k8s.io/yaml"
)

// Diff compares each given object with the one in force and with what is
// on the node, and says what berth would do. It changes nothing.
func (s *Manifests) Diff(ctx context.Context, r *manifestsapi.DiffRequest) (*manifestsapi.DiffResponse, error) {
	objs, err := parseFiles(requestFiles(r.Data, r.File, r.Dir, r.Files), r.Namespace)
	if err != nil {
		return nil, err
	}
	objs, opts, err := applyScope(objs, r.Prune, true, r.Applyset, r.Selector)
	if err != nil {
		return nil, err
	}
	seen := map[spec.Key]bool{}
	for i, o := range objs {
		// Compared as apply would store it, with its apply set label and
		// the node's defaults, so diff and the next reconcile compare the
		// same values.
		var inForce *spec.Object
		if e, ok := s.Desired.Get(o.Key()); ok && e.Source == desired.SourceAPI {
			inForce = &e.Object
		}
		objs[i] = s.Desired.Resolve(desired.WithApplySet(o, opts.ApplySet, inForce))
		o = objs[i]
		if seen[o.Key()] {
			return nil, fmt.Errorf("%s is given twice: %w", o.Key(), errdefs.ErrInvalidArgument)
		}
		seen[o.Key()] = true
	}
	// Images first, so a Container knows whether its image will change,
	// and Containers before Tasks.
	slices.SortStableFunc(objs, func(a, b spec.Object) int {
		return slices.Index(spec.Kinds, a.Kind) - slices.Index(spec.Kinds, b.Kind)
	})
	p := &diffPlan{s: s, given: map[spec.Key]spec.Object{}, acts: map[spec.Key][]*manifestsapi.Action{}, digests: map[spec.Key]string{}}
	for _, o := range objs {
		p.given[o.Key()] = o
	}
	resp := &manifestsapi.DiffResponse{}
	for _, o := range objs {
		d, err := p.object(ctx, o)
		if err != nil {
			return nil, err
		}
		resp.Diffs = append(resp.Diffs, d)
	}
	resp.Diffs = append(resp.Diffs, p.restartDiffs(ctx)...)
	if r.Prune {
		pruned, err := s.pruneDiffs(ctx, objs, opts)
		if err != nil {
			return nil, err
		}
		resp.Diffs = append(resp.Diffs, pruned...)
	}
	return resp, nil
}

// pruneDiffs lists what apply --prune would delete: the dry run of the
// same apply, so diff and apply cannot disagree on the scope.
func (s *Manifests) pruneDiffs(ctx context.Context, objs []spec.Object, opts desired.ApplyOptions) ([]*manifestsapi.ObjectDiff, error) {
	results, err := s.API.Apply(ctx, objs, opts)
	if err != nil {
		return nil, err
	}
	why := "not in the given set"
	if opts.ApplySet != "" {
		why = fmt.Sprintf("in apply set %q, not in the given set", opts.ApplySet)
	}
	var diffs []*manifestsapi.ObjectDiff
	for _, res := range results {
		if res.Action != desired.Pruned {
			continue
		}
		d := &manifestsapi.ObjectDiff{Ref: refToAPI(res.Key)}
		if e, ok := s.Desired.Get(res.Key); ok {
			d.Diff = LineDiff("in force: "+res.Key.String(), "given: (none)", manifestYAML(e.Object), "")
		}
		d.Actions = []*manifestsapi.Action{{Ref: d.Ref, Verb: "delete", Reason: "pruned: " + why}}
		diffs = append(diffs, d)
	}
	return diffs, nil
}

// diffPlan is the state of one Diff: the objects given and the actions
// decided so far, which later kinds depend on.
type diffPlan struct {
	s     *Manifests
	given map[spec.Key]spec.Object
	acts  map[spec.Key][]*manifestsapi.Action
	// digests are what the given Images resolve to on the node now (their
	// records' targets), which their Containers are compared with.
	digests map[spec.Key]string
}

func (p *diffPlan) object(ctx context.Context, o spec.Object) (*manifestsapi.ObjectDiff, error) {
	k := o.Key()
	d := &manifestsapi.ObjectDiff{Ref: refToAPI(k)}
	old, inForce := p.s.Desired.Get(k)
	oldText := ""
	if inForce {
		// A manifest file's relative paths, resolved as the given ones are.
		old.Object = absolutePaths(old.Object)
		oldText = manifestYAML(old.Object)
	}
	d.Diff = LineDiff("in force: "+k.String(), "given: "+k.String(), oldText, manifestYAML(o))
	add := func(verb, reason string, fields ...string) {
		a := &manifestsapi.Action{Ref: refToAPI(k), Verb: verb, Reason: reason, Fields: fields}
		d.Actions = append(d.Actions, a)
		p.acts[k] = append(p.acts[k], a)
	}
	var oldObj *spec.Object
	if inForce {
		oldObj = &old.Object
	}
	var err error
	switch o.Kind {
	case spec.KindImage:
		err = p.image(ctx, o, oldObj, add)
	case spec.KindContainer:
		err = p.container(ctx, o, oldObj, add)
	case spec.KindTask:
		err = p.task(ctx, o, oldObj, add)
	case spec.KindNetwork:
		err = p.network(ctx, o, oldObj, add)
	}
	if inForce && old.Source != desired.SourceAPI && (d.Diff != "" || len(d.Actions) > 0) {
		// berth apply would be refused for this key: say so beside what
		// the node would need. Equal to the file in force is no difference.
		add("conflict", "declared by the manifest file "+old.Source+"; berth apply would change nothing")
	}
	return d, err
}

type addFunc func(verb, reason string, fields ...string)

// image, container and task gather the facts the reconcilers would see
// and print what package plan decides on them: the same function the
// reconcilers execute, so diff and the next reconcile agree (see
// test/plan_agreement_test.go). Each reads the state before anything
// changes; what only a reconcile can learn (a registry's answer, a
// backoff's timer) is left out and the reasons say so.

func (p *diffPlan) image(ctx context.Context, o spec.Object, _ *spec.Object, add addFunc) error {
	is, _ := o.ImageSpec()
	name, err := reference.Name(is.Ref)
	if err != nil {
		return fmt.Errorf("%s: spec.ref: %v: %w", o.Key(), err, errdefs.ErrInvalidArgument)
	}
	var f plan.ImageFacts
	img, err := p.s.DB.GetImage(ctx, o.Key().Namespace, name)
	switch {
	case err == nil:
		f.Present, f.Unpacked = true, img.Unpacked[cmp.Or(is.Snapshotter, spec.DefaultSnapshotter)] != ""
		p.digests[o.Key()] = img.Target.Digest.String()
	case !errdefs.IsNotFound(err):
		return err
	}
	if st, err := p.s.DB.GetStatus(ctx, o.Key()); err == nil {
		f.StatusHash = st.SpecHash
	}
	addAll(add, plan.Image(is, spec.Hash(o), f))
	return nil
}

func (p *diffPlan) container(ctx context.Context, o spec.Object, old *spec.Object, add addFunc) error {
	k := o.Key()
	cs, _ := o.ContainerSpec()
	ctr, err := p.s.DB.GetContainer(ctx, k.Namespace, k.Name)
	f := plan.ContainerFacts{Exists: err == nil}
	switch {
	case err == nil:
		f.InstanceHash, f.NetworkHash, f.ImageDigest = ctr.Labels[spec.LabelSpecHash], ctr.Labels[spec.LabelNetworkHash], ctr.ImageDigest
		f.SnapshotPresent = p.snapshotPresent(ctx, ctr.Snapshotter, ctr.SnapshotKey)
	case !errdefs.IsNotFound(err):
		return err
	}
	imgKey := spec.Key{Namespace: k.Namespace, Kind: spec.KindImage, Name: cs.Image}
	// Probes are not part of what the container is made from.
	w := plan.ContainerWant{Hash: spec.InstanceHash(o), ImageDigest: ctr.ImageDigest, ImagePull: hasVerb(p.acts[imgKey], string(plan.Pull))}
	// The digest its Image resolves to: the record the reconciled Image
	// keeps (the given Image's, else the status of the one in force).
	if d := p.digests[imgKey]; d != "" {
		w.ImageDigest = d
	} else if st, err := p.s.DB.GetStatus(ctx, imgKey); err == nil && st.Status.ImageStatus != nil && st.Status.ImageStatus.Digest != "" {
		w.ImageDigest = st.Status.ImageStatus.Digest
	}
	w.Network, w.NetworkDeclared = p.networkHash(k.Namespace, cs)
	if old != nil {
		w.Changed = changedFields(old.Spec, o.Spec)
	}
	addAll(add, plan.Container(w, f))
	return nil
}

// network plans a Network from its recorded status (what was written).
func (p *diffPlan) network(ctx context.Context, o spec.Object, old *spec.Object, add addFunc) error {
	var f plan.NetworkFacts
	st, err := p.s.DB.GetStatus(ctx, o.Key())
	switch {
	case err == nil:
		f.StatusHash = st.SpecHash
	case !errdefs.IsNotFound(err):
		return err
	}
	var changed []string
	if old != nil {
		changed = changedFields(old.Spec, o.Spec)
	}
	addAll(add, plan.Network(spec.Hash(o), f, changed))
	return nil
}

// networkHash is the spec hash of the declared Network cs names (the given
// one, else the one in force), as the controller's networkHash.
func (p *diffPlan) networkHash(ns string, cs spec.ContainerSpec) (string, bool) {
	if !cs.Network.Bridged() || cs.Network == spec.NetworkBridge {
		return "", false
	}
	nk := spec.Key{Namespace: ns, Kind: spec.KindNetwork, Name: string(cs.Network)}
	if g, ok := p.given[nk]; ok {
		return spec.Hash(g), true
	}
	if e, ok := p.s.Desired.Get(nk); ok {
		return e.Hash, true
	}
	return "", false
}

// snapshotPresent is true when it cannot be told (no snapshotters given):
// a missing snapshot is drift the reconciler repairs, not a difference.
func (p *diffPlan) snapshotPresent(ctx context.Context, snapshotter, key string) bool {
	if p.s.Snapshots == nil {
		return true
	}
	sn, _, err := p.s.Snapshots.Snapshotter(snapshotter)
	if err != nil {
		return false
	}
	_, err = sn.Stat(ctx, key)
	return !errdefs.IsNotFound(err)
}

func (p *diffPlan) task(ctx context.Context, o spec.Object, old *spec.Object, add addFunc) error {
	k := o.Key()
	ts, _ := o.TaskSpec()
	ckey := spec.Key{Namespace: k.Namespace, Kind: spec.KindContainer, Name: ts.Container}
	f := plan.TaskFacts{Owner: p.taskOf(k.Namespace, ts.Container),
		ContainerChanges: hasVerb(p.acts[ckey], string(plan.Recreate)) || hasVerb(p.acts[ckey], string(plan.Create))}
	info, err := p.s.Node.GetTask(ctx, k.Namespace, ts.Container)
	switch {
	case err == nil:
		f.Phase, f.ExitStatus = info.Status, info.ExitStatus
	case errdefs.IsNotFound(err):
		// Gone: an exit of its last run is judged by the restart policy,
		// a recreated container is a fresh start (as reconcileTask).
		var prev spec.TaskStatus
		if st, err := p.s.DB.GetStatus(ctx, k); err == nil && st.Status.TaskStatus != nil {
			prev = *st.Status.TaskStatus
		}
		if ctr, err := p.s.DB.GetContainer(ctx, k.Namespace, ts.Container); err == nil {
			f.Replaced = plan.Replaced(prev, ctr.CreatedAt)
			if x := ctr.LastExit; x != nil && plan.IsLastRun(prev, x.Pid, x.ExitedAt) {
				f.LastExit = &plan.Exit{Status: x.ExitStatus}
			}
		}
	default:
		return err
	}
	var fields []string
	if old != nil {
		fields = changedFields(old.Spec, o.Spec)
	}
	acts := plan.Task(k.Name, ts, f)
	if len(acts) > 0 && len(fields) > 0 && len(acts[0].Fields) == 0 {
		acts[0].Fields = fields
	}
	addAll(add, acts)
	if len(acts) == 0 && len(fields) > 0 && f.Phase.Live() {
		// Not a node action: a changed restart policy or stop timeout is
		// used the next time the task ends.
		add("update", "takes effect at the next stop or restart", fields...)
	}
	return nil
}

// taskOf is the Task that would run container id once the given objects
// are applied: the first by name of those naming it, given or in force
// (as the controller's taskOf reads the desired store).
func (p *diffPlan) taskOf(ns, id string) string {
	names := map[string]bool{}
	for _, e := range p.s.Desired.List(desired.Filter{Namespace: ns, Kind: spec.KindTask}) {
		if _, given := p.given[e.Key]; given {
			continue
		}
		if ts, ok := e.Object.TaskSpec(); ok && ts.Container == id {
			names[e.Key.Name] = true
		}
	}
	for k, o := range p.given {
		if ts, ok := o.TaskSpec(); ok && k.Namespace == ns && ts.Container == id {
			names[k.Name] = true
		}
	}
	owner := ""
	for n := range names {
		if owner == "" || n < owner {
			owner = n
		}
	}
	return owner
}

func addAll(add addFunc, acts []plan.Action) {
	for _, a := range acts {
		add(string(a.Verb), a.Reason, a.Fields...)
	}
}

func hasVerb(acts []*manifestsapi.Action, verb string) bool {
	for _, a := range acts {
		if a.Verb == verb {
			return true
		}
	}
	return false
}

// changedFields names the top-level spec fields that differ, as
// spec.env, spec.resources.
func changedFields(a, b spec.Spec) []string {
	ma, mb := specMap(a), specMap(b)
	var out []string
	for k, v := range mb {
		if !reflect.DeepEqual(ma[k], v) {
			out = append(out, "spec."+k)
		}
	}
	for k := range ma {
		if _, ok := mb[k]; !ok {
			out = append(out, "spec."+k)
		}
	}
	slices.Sort(out)
	return out
}

func specMap(s spec.Spec) map[string]any {
	m := map[string]any{}
	if b, err := json.Marshal(s); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// manifestYAML is the object's manifest (no status) as YAML with sorted
// keys, so that two objects compare line by line.
func manifestYAML(o spec.Object) string {
	o = o.DeepCopy()
	o.Status = spec.Status{}
	b, err := yaml.Marshal(o)
	if err != nil {
		return fmt.Sprintf("# cannot encode: %v\n", err)
	}
	return string(b)
}
