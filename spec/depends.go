package spec

import (
	"slices"
	"strings"
)

// DependencyCycle finds a cycle of dependsOn among the Tasks of one
// namespace, given each Task's dependencies by name. It returns the cycle
// as names, the first repeated at the end (a → b → a), or nil. The search
// is deterministic: names are visited in sorted order.
func DependencyCycle(deps map[string][]string) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch color[d] {
			case grey:
				i := slices.Index(stack, d)
				found = append(slices.Clone(stack[i:]), d)
				return true
			case white:
				if _, declared := deps[d]; declared && visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	names := make([]string, 0, len(deps))
	for n := range deps {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if color[n] == white && visit(n) {
			return found
		}
	}
	return nil
}

// CheckDependencies finds the dependsOn cycles of a set of objects (what
// one Validate per object cannot see): one error per cycle, on the Task of
// the cycle that sorts first, naming the whole cycle. A Task named that
// is not in the set is not an error: it may be declared elsewhere.
func CheckDependencies(objs []Object) ErrorList {
	byNS := map[string]map[string][]string{}
	where := map[Key]Object{}
	for _, o := range objs {
		ts, ok := o.Spec.(TaskSpec)
		if !ok {
			continue
		}
		ns := cmpOr(o.Metadata.Namespace, DefaultNamespace)
		if byNS[ns] == nil {
			byNS[ns] = map[string][]string{}
		}
		var names []string
		for _, d := range ts.DependsOn {
			names = append(names, d.Task)
		}
		byNS[ns][o.Metadata.Name] = names
		where[Key{Namespace: ns, Kind: KindTask, Name: o.Metadata.Name}] = o
	}
	var errs ErrorList
	nss := make([]string, 0, len(byNS))
	for ns := range byNS {
		nss = append(nss, ns)
	}
	slices.Sort(nss)
	for _, ns := range nss {
		deps := byNS[ns]
		for {
			cyc := DependencyCycle(deps)
			if cyc == nil {
				break
			}
			k := Key{Namespace: ns, Kind: KindTask, Name: cyc[0]}
			errs = append(errs, &FieldError{Origin: where[k].Origin, Object: k.String(), Field: "spec.dependsOn",
				Detail: "dependency cycle: " + strings.Join(cyc, " → ")})
			// Report every cycle once: take its members out and look again.
			for _, n := range cyc {
				delete(deps, n)
			}
		}
	}
	return errs
}
