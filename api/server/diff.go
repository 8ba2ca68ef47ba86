package server

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/content/remote"
	"berth.dev/berth/desired"
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
	p := &diffPlan{s: s, given: map[spec.Key]spec.Object{}, acts: map[spec.Key][]*manifestsapi.Action{}}
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
	}
	if inForce && old.Source != desired.SourceAPI && (d.Diff != "" || len(d.Actions) > 0) {
		// berth apply would be refused for this key: say so beside what
		// the node would need. Equal to the file in force is no difference.
		add("conflict", "declared by the manifest file "+old.Source+"; berth apply would change nothing")
	}
	return d, err
}

type addFunc func(verb, reason string, fields ...string)

func (p *diffPlan) image(ctx context.Context, o spec.Object, old *spec.Object, add addFunc) error {
	is, _ := o.ImageSpec()
	ref, err := remote.ParseRef(is.Ref)
	if err != nil {
		return fmt.Errorf("%s: spec.ref: %v: %w", o.Key(), err, errdefs.ErrInvalidArgument)
	}
	_, err = p.s.DB.GetImage(ctx, o.Key().Namespace, ref.Name())
	switch {
	case errdefs.IsNotFound(err):
		how := "not on the node"
		if is.Source != nil {
			how += "; from its offline source first"
		}
		add("pull", how)
		return nil
	case err != nil:
		return err
	}
	if old != nil {
		ois, _ := old.ImageSpec()
		if ois.Ref != is.Ref {
			add("pull", "spec.ref changed", "spec.ref")
			return nil
		}
		if is.PullPolicy == spec.PullAlways && spec.Hash(*old) != spec.Hash(o) {
			add("pull", "spec changed and pullPolicy is Always", changedFields(old.Spec, o.Spec)...)
			return nil
		}
	}
	return nil
}

func (p *diffPlan) container(ctx context.Context, o spec.Object, old *spec.Object, add addFunc) error {
	k := o.Key()
	cs, _ := o.ContainerSpec()
	ctr, err := p.s.Node.DB().GetContainer(ctx, k.Namespace, k.Name)
	if errdefs.IsNotFound(err) {
		add("create", "no container "+k.Name+" on the node")
		return nil
	}
	if err != nil {
		return err
	}
	imgKey := spec.Key{Namespace: k.Namespace, Kind: spec.KindImage, Name: cs.Image}
	if hasVerb(p.acts[imgKey], "pull") {
		add("recreate", "its Image "+cs.Image+" will be pulled again", "image")
		return nil
	}
	if ctr.Labels[spec.LabelSpecHash] == spec.ContainerInstanceHash(spec.InstanceHash(o), ctr.ImageDigest) {
		return nil // made from exactly this spec and its current image
	}
	fields := []string{"spec"}
	reason := "the container was not made from this spec"
	if old != nil {
		if f := changedFields(old.Spec, o.Spec); len(f) > 0 {
			fields, reason = f, "spec changed"
		}
	}
	add("recreate", reason, fields...)
	return nil
}

func (p *diffPlan) task(ctx context.Context, o spec.Object, old *spec.Object, add addFunc) error {
	k := o.Key()
	ts, _ := o.TaskSpec()
	ckey := spec.Key{Namespace: k.Namespace, Kind: spec.KindContainer, Name: ts.Container}
	status := spec.TaskPhase("absent")
	info, err := p.s.Node.GetTask(ctx, k.Namespace, ts.Container)
	switch {
	case err == nil:
		status = info.Status
	case !errdefs.IsNotFound(err):
		return err
	}
	live := status.Live()
	recreated := hasVerb(p.acts[ckey], "recreate") || hasVerb(p.acts[ckey], "create")
	var fields []string
	if old != nil {
		fields = changedFields(old.Spec, o.Spec)
	}
	switch ts.State {
	case spec.TaskStopped:
		if live {
			add("stop", "state is Stopped", fields...)
		}
		return nil
	case spec.TaskPaused:
		switch {
		case live && recreated:
			add("restart", "its Container "+ts.Container+" will be recreated", "container")
			add("pause", "state is Paused")
		case status == spec.TaskPhaseRunning:
			add("pause", "state is Paused", fields...)
		case !live:
			add("start", "no running task", fields...)
			add("pause", "state is Paused")
		}
		return nil
	}
	switch {
	case live && recreated:
		add("restart", "its Container "+ts.Container+" will be recreated", "container")
	case old != nil && old.Spec.(spec.TaskSpec).Container != ts.Container && live:
		add("restart", "spec.container changed", "spec.container")
	case !live:
		add("start", "task is "+string(status), fields...)
	case status == spec.TaskPhasePaused:
		add("resume", "state is Running", fields...)
	case len(fields) > 0:
		add("update", "takes effect at the next stop or restart", fields...)
	}
	return nil
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
