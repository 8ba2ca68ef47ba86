package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/desired"
	"berth.dev/berth/plan"
	"berth.dev/berth/spec"
)

// Restarted is the apply result of a Task whose own spec may be unchanged
// but whose Container the apply recreates: its task is stopped and started
// again in the new container, which "unchanged" would hide.
const Restarted desired.Action = "restarted"

// recreatedContainers are the Containers among objs whose container on
// the node was not made from the given spec (as the store would hold it):
// applying them recreates it. It is computed before the apply, while the
// node still holds the old container.
func (s *Manifests) recreatedContainers(ctx context.Context, objs []spec.Object, applySet string) map[spec.Key]bool {
	out := map[spec.Key]bool{}
	for _, o := range objs {
		if o.Kind != spec.KindContainer {
			continue
		}
		k := o.Key()
		var inForce *spec.Object
		if e, ok := s.Desired.Get(k); ok {
			if e.Source != desired.SourceAPI {
				continue // a conflict: the apply changes nothing
			}
			inForce = &e.Object
		}
		ctr, err := s.DB.GetContainer(ctx, k.Namespace, k.Name)
		if err != nil {
			continue // none to recreate (a create), or unknown
		}
		resolved := s.Desired.Resolve(desired.WithApplySet(o, applySet, inForce))
		// plan's rule, the reconciler's, on the spec alone: the image's
		// digest and the snapshot are as they are now.
		acts := plan.Container(plan.ContainerWant{Hash: spec.Hash(resolved), ImageDigest: ctr.ImageDigest},
			plan.ContainerFacts{Exists: true, InstanceHash: ctr.Labels[spec.LabelSpecHash], ImageDigest: ctr.ImageDigest, SnapshotPresent: true})
		if plan.Has(acts, plan.Recreate) {
			out[k] = true
		}
	}
	return out
}

// restartedTasks are the Tasks (given or in force; given first) that run
// a live task in one of the containers recreated, with that Container.
func (s *Manifests) restartedTasks(ctx context.Context, given []spec.Object, recreated map[spec.Key]bool) map[spec.Key]spec.Key {
	out := map[spec.Key]spec.Key{}
	if len(recreated) == 0 || s.Node == nil {
		return out
	}
	tasks := map[spec.Key]spec.Object{}
	var nss []string
	for k := range recreated {
		if !slices.Contains(nss, k.Namespace) {
			nss = append(nss, k.Namespace)
		}
	}
	for _, ns := range nss {
		for _, e := range s.Desired.List(desired.Filter{Namespace: ns, Kind: spec.KindTask}) {
			tasks[e.Key] = e.Object
		}
	}
	for _, o := range given {
		if o.Kind == spec.KindTask {
			tasks[o.Key()] = o
		}
	}
	for k, o := range tasks {
		ts, ok := o.TaskSpec()
		ck := spec.Key{Namespace: k.Namespace, Kind: spec.KindContainer, Name: ts.Container}
		if !ok || !recreated[ck] || ts.State == spec.TaskStopped {
			continue
		}
		if info, err := s.Node.GetTask(ctx, k.Namespace, ts.Container); err != nil || !info.Status.Live() {
			continue // nothing runs that would be stopped
		}
		out[k] = ck
	}
	return out
}

// withRestarts turns the "unchanged" or "configured" result of each Task
// restarted into Restarted, and adds one for such a Task the apply did not
// name.
func withRestarts(results []desired.Result, restarted map[spec.Key]spec.Key) []desired.Result {
	seen := map[spec.Key]bool{}
	for i, r := range results {
		ck, ok := restarted[r.Key]
		if !ok {
			continue
		}
		seen[r.Key] = true
		if r.Action == desired.Unchanged || r.Action == desired.Configured {
			results[i].Action, results[i].Message = Restarted, fmt.Sprintf("its %s is recreated", ck)
		}
	}
	var extra []spec.Key
	for k := range restarted {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	slices.SortFunc(extra, func(a, b spec.Key) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range extra {
		results = append(results, desired.Result{Key: k, Action: Restarted, Message: fmt.Sprintf("its %s is recreated", restarted[k])})
	}
	return results
}

// restartDiffs are the diffs of Tasks not given whose Container the diff
// recreates: apply would restart them.
func (p *diffPlan) restartDiffs(ctx context.Context) []*manifestsapi.ObjectDiff {
	recreated := map[spec.Key]bool{}
	for k, acts := range p.acts {
		if k.Kind == spec.KindContainer && hasVerb(acts, "recreate") {
			recreated[k] = true
		}
	}
	restarted := p.s.restartedTasks(ctx, nil, recreated)
	var keys []spec.Key
	for k := range restarted {
		if _, given := p.given[k]; !given {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b spec.Key) int { return strings.Compare(a.String(), b.String()) })
	var diffs []*manifestsapi.ObjectDiff
	for _, k := range keys {
		ref := refToAPI(k)
		diffs = append(diffs, &manifestsapi.ObjectDiff{Ref: ref, Actions: []*manifestsapi.Action{{Ref: ref, Verb: "restart", Reason: fmt.Sprintf("its Container %s will be recreated", restarted[k].Name), Fields: []string{"container"}}}})
	}
	return diffs
}
