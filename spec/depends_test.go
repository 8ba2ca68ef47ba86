package spec

import (
	"slices"
	"strings"
	"testing"
)

func TestDependencyCycle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		deps map[string][]string
		want []string
	}{
		{"none", map[string][]string{"a": {"b"}, "b": {"c"}, "c": nil}, nil},
		{"undeclared dependency", map[string][]string{"a": {"x"}}, nil},
		{"two", map[string][]string{"a": {"b"}, "b": {"a"}}, []string{"a", "b", "a"}},
		{"three", map[string][]string{"web": {"db"}, "db": {"cache"}, "cache": {"web"}}, []string{"cache", "web", "db", "cache"}},
		{"tail into cycle", map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"b"}}, []string{"b", "c", "b"}},
		{"diamond", map[string][]string{"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": nil}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DependencyCycle(tt.deps); !slices.Equal(got, tt.want) {
				t.Errorf("DependencyCycle = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckDependencies(t *testing.T) {
	t.Parallel()
	task := func(ns, name string, deps ...string) Object {
		ts := TaskSpec{Container: name}
		for _, d := range deps {
			ts.DependsOn = append(ts.DependsOn, Dependency{Task: d})
		}
		return Object{Kind: KindTask, Metadata: Metadata{Name: name, Namespace: ns}, Spec: ts, Origin: Origin{File: name + ".yaml", Document: 1}}
	}
	errs := CheckDependencies([]Object{task("", "a", "b"), task("", "b", "a"), task("other", "a", "b"), task("other", "b"), task("", "c", "c")})
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(errs), errs)
	}
	if got, want := errs[0].Error(), "a.yaml: document 1: Task default/a: spec.dependsOn: dependency cycle: a → b → a"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !strings.Contains(errs[1].Error(), "c → c") {
		t.Errorf("self-cycle not named: %v", errs[1])
	}
}
