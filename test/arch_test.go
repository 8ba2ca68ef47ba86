// Package test holds berth's end-to-end tests and, in this file, the test
// that keeps the import arrows of ARCHITECTURE.md pointing downward.
package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
)

const module = "berth.dev/berth"

// Patterns name berth packages relative to the module: "spec" is that
// package, "spec/..." it and everything below, "*" one path element
// ("*/proxy/..." is content/proxy, snapshot/proxy, …), "..." everything.

// base is what any package may import: leaf helpers.
var base = []string{"version", "internal/..."}

// stores are the packages of the store layer; they import none of each other.
var stores = []string{"desired/...", "observed/...", "content/...", "snapshot/...", "shim/...", "oci/...", "network/...", "policy/..."}

// nodeFacing is what node's consumers (api/server, the controllers) may
// import of the store layer: the stores' records and interfaces (desired,
// observed, content and snapshot's interface packages) and the pure
// translators beside them, never a store's implementation. The node is
// reached through its interfaces (node.Images, node.Tasks, …), so what a
// front door can do to the node is what those interfaces say.
var nodeFacing = []string{"desired", "observed", "content", "content/reference", "snapshot", "oci", "network", "policy"}

// layers says which berth packages each package may import. The first row
// whose pattern matches a package applies, so specific rows come first. A
// package may always import packages to which the same row applies
// (content/local → content, api/images/v1 → api/types/v1). Rows for packages that do not exist yet cost nothing; a berth
// package that matches no row fails the test until it is given one.
var layers = []struct {
	pkg   string
	allow [][]string // concatenated
}{
	// The bottom: types and generated protos.
	{"spec/...", nil}, // pure: no berth package at all
	{"version", nil},
	{"internal/testutil", nil},
	{"internal/...", [][]string{{"version"}}},
	// api/server serves the layer below; the generated api packages import
	// only each other (and never api/server, see restricted).
	{"api/server/...", [][]string{{"api/...", "spec/...", "node", "plan", "rollout"}, nodeFacing, base}},
	{"api/...", [][]string{base}},
	// The stores: each may use spec and the api protos (content/proxy is a
	// ttrpc client), never another store.
	{"desired/...", [][]string{{"spec/..."}, base}},
	{"observed/...", [][]string{{"spec/..."}, base}},
	{"content/...", [][]string{{"api/..."}, base}},
	{"snapshot/...", [][]string{{"api/..."}, base}},
	{"shim/...", [][]string{{"api/..."}, base}},
	{"oci/...", [][]string{{"spec/..."}, base}},
	{"network/...", [][]string{base}},              // CNI mechanism: no berth store, not even spec
	{"policy/...", [][]string{{"spec/..."}, base}}, // the node policy: pure evaluation
	// plan: desired + observed facts → actions, the one rule the
	// reconcilers execute and berth diff prints; pure, so spec only.
	{"plan", [][]string{{"spec/..."}, base}},
	// node joins the stores into imperative operations; the controllers and
	// api/server use it.
	{"node/...", [][]string{{"spec/...", "api/shim/..."}, stores, base}}, // shim/client takes api/shim/v1 requests
	// cri is the kubelet's front door beside api/server: node and network,
	// never the controllers.
	{"cri/...", [][]string{{"spec/...", "node/...", "network/..."}, stores, base}},
	{"controller/...", [][]string{{"spec/...", "api/...", "node", "plan", "metrics/..."}, nodeFacing, base}},
	// rollout applies sets as revisions: the desired store, node's images
	// (its pre-pulls) and the observed statuses, never the controllers.
	{"rollout/...", [][]string{{"spec/...", "node"}, nodeFacing, base}},
	// metrics: Prometheus collectors; reads the node through its own small
	// interfaces, so it imports no berth package.
	{"metrics/...", [][]string{base}},
	// The binaries.
	{"cmd/berthd/...", [][]string{{"..."}}},
	{"cmd/berth-pause", nil}, // a pod's sandbox process: the standard library only
	{"cmd/berth-shim/...", [][]string{{"shim/...", "api/..."}, base}},
	{"cmd/berth-init/...", [][]string{base}}, // PID 1 in containers: no berth package
	{"cmd/berth/...", [][]string{{"api/...", "spec/...", "content", "snapshot", "*/proxy/..."}, base}},
	// Tooling and tests.
	// Benchmarks may drive berthd through its API clients, as the CLI does.
	{"hack/...", [][]string{{"api/..."}, base}},
	{"test/...", [][]string{{"..."}}},
}

// restriction says that only importers may import target.
type restriction struct {
	target    string
	importers []string
}

// restricted names packages only some may import, whatever layers allow.
// Imports within one row of layers are exempt (cmd/berthd/x → cmd/berthd).
var restricted = []restriction{
	{"cmd/...", nil}, // nothing imports a command
	{"api/server/...", []string{"cmd/berthd/...", "test/..."}},
	{"internal/testutil", []string{"test/...", "*/testsuite/...", "*/*/testsuite/..."}},
	// The registry client is for what pulls and pushes; a caller that
	// only names images parses references with content/reference.
	{"content/remote/...", []string{"node/...", "cri/...", "cmd/berthd/...", "test/...", "hack/..."}},
}

// forbiddenDeps are packages (module or package paths, with everything
// below them; a path ending in "!" names that package alone) that must not
// be among a package's transitive dependencies.
var forbiddenDeps = []struct {
	pkg  string
	deps []string
	why  string
}{
	{"cmd/berthd", []string{module + "/shim!"},
		"berthd starts shims and reads their bundles through shim/bundle and shim/client; the shim's server runs only in berth-shim"},
	{"cmd/berth-shim", []string{"github.com/spf13/cobra", "github.com/prometheus", "go.etcd.io/bbolt"},
		"one shim runs per container: its imports are its memory"},
	{"cmd/berth", []string{"go.etcd.io/bbolt", module + "/content/local", module + "/snapshot/overlay",
		module + "/snapshot/native", module + "/snapshot/storage"},
		"the CLI talks to berthd over the API and never opens a store"},
	{"cri", []string{module + "/controller", module + "/desired", module + "/api/server"},
		"the CRI's objects are the kubelet's: it drives the node directly and never the manifest controllers or their desired state"},
	{"spec", []string{"go.etcd.io/bbolt", "github.com/containerd/ttrpc", "github.com/google/go-containerregistry", "net/http"},
		"spec is pure: types, parsing, validation, hashing"},
}

// match reports whether rel (a package path relative to the module)
// matches pattern.
func match(pattern, rel string) bool {
	if pattern == "..." {
		return true
	}
	ps, rs := strings.Split(pattern, "/"), strings.Split(rel, "/")
	for i, p := range ps {
		if p == "..." && i == len(ps)-1 {
			return true
		}
		if i >= len(rs) || (p != "*" && p != rs[i]) {
			return false
		}
	}
	return len(ps) == len(rs)
}

// rowOf is the index of the layers row that applies to rel, -1 if none.
func rowOf(rel string) int {
	for i, l := range layers {
		if match(l.pkg, rel) {
			return i
		}
	}
	return -1
}

func matchAny(patterns []string, rel string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, rel) })
}

// checkEdges returns one message per forbidden import edge among the berth
// packages of imports (package → its direct imports, full paths).
func checkEdges(imports map[string][]string) []string {
	var bad []string
	for _, pkg := range sortedKeys(imports) {
		from, ok := strings.CutPrefix(pkg, module+"/")
		if !ok {
			continue
		}
		row := rowOf(from)
		if row < 0 {
			bad = append(bad, fmt.Sprintf("%s: no row in the layers table of test/arch_test.go; add one", from))
			continue
		}
		allow := slices.Concat(layers[row].allow...)
		for _, imp := range imports[pkg] {
			to, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if rowOf(to) == row {
				continue // within its own row: content/local → content
			}
			if i := slices.IndexFunc(restricted, func(r restriction) bool {
				return match(r.target, to) && !matchAny(r.importers, from)
			}); i >= 0 {
				bad = append(bad, fmt.Sprintf("%s → %s: %s may be imported only by %v", from, to, restricted[i].target, restricted[i].importers))
			} else if !matchAny(allow, to) {
				bad = append(bad, fmt.Sprintf("%s → %s: %s may import only %v", from, to, layers[row].pkg, allow))
			}
		}
	}
	return bad
}

// checkDeps returns one message per forbidden transitive dependency, with
// the chain of imports that pulls it in.
func checkDeps(imports map[string][]string) []string {
	var bad []string
	for _, f := range forbiddenDeps {
		root := module + "/" + f.pkg
		if _, ok := imports[root]; !ok {
			continue // not written yet
		}
		// Breadth first, so the chain reported is a shortest one.
		parent := map[string]string{root: ""}
		queue := []string{root}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for _, d := range f.deps {
				d, exact := strings.CutSuffix(d, "!")
				if p == d || (!exact && strings.HasPrefix(p, d+"/")) {
					bad = append(bad, fmt.Sprintf("%s depends on %s (%s) via %s", f.pkg, d, f.why, chain(parent, p)))
				}
			}
			for _, imp := range imports[p] {
				if _, seen := parent[imp]; !seen {
					parent[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	return bad
}

func chain(parent map[string]string, p string) string {
	var c []string
	for ; p != ""; p = parent[p] {
		c = append(c, strings.TrimPrefix(p, module+"/"))
	}
	slices.Reverse(c)
	return strings.Join(c, " → ")
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// goList returns package → direct imports for every package of the module
// and all their dependencies, and the errors go list reported (a package
// being written by someone else may not compile; its imports still count).
func goList(t *testing.T) (map[string][]string, []string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testutil.Missing(t, "needs the go command")
	}
	cmd := exec.Command(goBin, "list", "-e", "-deps", "-json=ImportPath,Imports,Error", "./...")
	cmd.Dir = testutil.RepoRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	imports := map[string][]string{}
	var errs []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		imports[p.ImportPath] = p.Imports
		if p.Error != nil {
			errs = append(errs, p.ImportPath+": "+p.Error.Err)
		}
	}
	return imports, errs
}

func TestArchImportArrows(t *testing.T) {
	imports, errs := goList(t)
	for _, e := range errs {
		t.Logf("go list (not checked here): %s", e)
	}
	if _, ok := imports[module+"/version"]; !ok {
		t.Fatalf("go list found no %s/version: is it run in the module?", module)
	}
	for _, msg := range checkEdges(imports) {
		t.Error(msg)
	}
	for _, msg := range checkDeps(imports) {
		t.Error(msg)
	}
}
