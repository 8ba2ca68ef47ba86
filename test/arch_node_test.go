package test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
)

// nodeConsumers are the packages that reach the node only through its
// interfaces (node.Images, node.Tasks, …): none of them may name the
// concrete *node.Node, so none can call what the interfaces leave out.
// cmd/berthd builds the Node and hands it over; it is the one exception.
var nodeConsumers = []string{"api/server", "controller", "cri"}

// TestArchNodeInterfaces fails on any mention of node.Node in the
// non-test files of nodeConsumers (the import arrows cannot say this: the
// package may be imported, only its concrete type is out of bounds).
func TestArchNodeInterfaces(t *testing.T) {
	root := testutil.RepoRoot(t)
	for _, pkg := range nodeConsumers {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			for _, pos := range concreteNodeUses(t, f) {
				t.Errorf("%s: names node.Node; name the node interfaces it needs (node/interfaces.go) instead", pos)
			}
		}
	}
}

// concreteNodeUses are the positions in file f where the node package's
// Node type is named, whatever the import is called there.
func concreteNodeUses(t *testing.T, f string) []string {
	t.Helper()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", f, err)
	}
	name := ""
	for _, imp := range file.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == module+"/node" {
			name = "node"
			if imp.Name != nil {
				name = imp.Name.Name
			}
		}
	}
	if name == "" {
		return nil
	}
	var out []string
	ast.Inspect(file, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Node" {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == name {
				out = append(out, fset.Position(sel.Pos()).String())
			}
		}
		return true
	})
	return out
}

// TestArchNodeInterfacesCheck shows the check firing on a file that names
// the concrete type and passing one that names an interface.
func TestArchNodeInterfacesCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		return testutil.WriteFile(t, dir, name, []byte(src), 0o644)
	}
	bad := write("bad.go", "package x\nimport n \""+module+"/node\"\ntype S struct{ N *n.Node }\n")
	good := write("good.go", "package x\nimport \""+module+"/node\"\ntype S struct{ T node.Tasks }\n")
	if got := concreteNodeUses(t, bad); len(got) != 1 {
		t.Errorf("bad.go: %v, want one use", got)
	}
	if got := concreteNodeUses(t, good); len(got) != 0 {
		t.Errorf("good.go: %v, want none", got)
	}
}
