package test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestArchMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, rel string
		want         bool
	}{
		{"spec", "spec", true},
		{"spec", "spec/x", false},
		{"spec/...", "spec", true},
		{"spec/...", "spec/x/y", true},
		{"spec/...", "specs", false},
		{"*/proxy/...", "content/proxy", true},
		{"*/proxy/...", "content/local", false},
		{"*/proxy/...", "proxy", false},
		{"...", "anything/at/all", true},
		{"cmd/berth/...", "cmd/berth-shim", false},
	} {
		if got := match(tc.pattern, tc.rel); got != tc.want {
			t.Errorf("match(%q, %q): got %v, want %v", tc.pattern, tc.rel, got, tc.want)
		}
	}
}

// TestCheck feeds the checks made-up import graphs, so each rule is seen to
// fire and to name the offending edge.
func TestArchCheck(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	for _, tc := range []struct {
		name    string
		imports map[string][]string
		want    []string // substrings, one per expected message, in order
	}{
		{"clean", map[string][]string{
			m("spec"):          nil,
			m("desired"):       {m("spec"), "fmt"},
			m("content/local"): {m("content"), "go.etcd.io/bbolt"},
			m("content"):       nil,
			m("shim"):          {m("api/shim/v1")},
			m("api/shim/v1"):   {m("api/types/v1")},
			m("controller"):    {m("node"), m("desired"), m("snapshot")},
			m("cmd/berthd"):    {m("api/server"), m("controller")},
			m("cmd/berth"):     {m("api/images/v1"), m("content/proxy"), m("spec")},
		}, nil},
		{"stores import each other", map[string][]string{
			m("content/local"): {m("snapshot")},
			m("observed"):      {m("desired")},
		}, []string{"content/local → snapshot: content/...", "observed → desired: observed/..."}},
		{"spec imports berth", map[string][]string{m("spec"): {m("version")}},
			[]string{"spec → version"}},
		{"imports of cmd and api/server", map[string][]string{
			m("controller"):        {m("cmd/berthd")},
			m("api/images/v1"):     {m("api/server")},
			m("cmd/berthd/wiring"): {m("cmd/berthd")},
		}, []string{"api/images/v1 → api/server: api/server/... may be imported only by",
			"controller → cmd/berthd: cmd/... may be imported only by []"}},
		{"cli and shim", map[string][]string{
			m("cmd/berth"):      {m("snapshot/overlay")},
			m("cmd/berth-shim"): {m("controller")},
		}, []string{"cmd/berth → snapshot/overlay", "cmd/berth-shim → controller"}},
		{"node's consumers", map[string][]string{
			m("api/server"): {m("node"), m("observed"), m("content/reference"), m("content/local")},
			m("controller"): {m("node"), m("desired"), m("content/remote"), m("snapshot/overlay")},
		}, []string{"api/server → content/local: api/server/... may import only",
			"controller → content/remote: content/remote/... may be imported only by",
			"controller → snapshot/overlay: controller/... may import only"}},
		{"unknown package", map[string][]string{m("newthing"): nil},
			[]string{"newthing: no row"}},
		{"testutil outside tests", map[string][]string{
			m("content/local"):      {m("internal/testutil")},
			m("snapshot/testsuite"): {m("internal/testutil")},
			m("test/harness"):       {m("internal/testutil")},
		}, []string{"content/local → internal/testutil: internal/testutil may be imported only by"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkMessages(t, checkEdges(tc.imports), tc.want)
		})
	}
}

func TestArchCheckDeps(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	imports := map[string][]string{
		m("cmd/berth-shim"):       {m("shim")},
		m("shim"):                 {m("api/shim/v1"), "github.com/spf13/cobra"},
		"github.com/spf13/cobra":  {"github.com/spf13/pflag"},
		m("cmd/berth"):            {m("content/proxy")},
		m("content/proxy"):        {"go.etcd.io/bbolt/errors"},
		m("spec"):                 {"sigs.k8s.io/yaml"},
		"go.etcd.io/bbolt/errors": nil,
		m("cmd/berthd"):           {m("shim/client")},
		m("shim/client"):          {m("shim/bundle"), m("shim")},
	}
	checkMessages(t, checkDeps(imports), []string{
		"cmd/berthd depends on berth.dev/berth/shim (berthd starts shims and reads their bundles through shim/bundle and shim/client; the shim's server runs only in berth-shim) via cmd/berthd → shim/client → shim",
		"cmd/berth-shim depends on github.com/spf13/cobra (one shim runs per container: its imports are its memory) via cmd/berth-shim → shim → github.com/spf13/cobra",
		"cmd/berth depends on go.etcd.io/bbolt (the CLI talks to berthd over the API and never opens a store) via cmd/berth → content/proxy → go.etcd.io/bbolt/errors",
	})
}

func checkMessages(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d:\n%s", len(got), len(want), cmp.Diff(want, got))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("message %d: got %q, want it to contain %q", i, got[i], want[i])
		}
	}
}
