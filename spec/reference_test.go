package spec

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite docs/manifests.md from the spec types")

// TestMarkdownReference_Committed: docs/manifests.md is what the spec types
// say; `make generate` rewrites it (go test ./spec -run Reference -update).
func TestMarkdownReference_Committed(t *testing.T) {
	got, err := MarkdownReference()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "docs", "manifests.md")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(got) {
		t.Fatalf("%s is not what the spec types say: run make generate", path)
	}
}

// TestSchema_EveryFieldExplained: every field of every kind says what it
// means, and every optional one what leaving it out means, so a field
// added without a comment or a default note fails here.
func TestSchema_EveryFieldExplained(t *testing.T) {
	for _, k := range Kinds {
		f, err := Schema(k)
		if err != nil {
			t.Fatal(err)
		}
		var walk func(Field)
		walk = func(f Field) {
			if f.Doc == "" {
				t.Errorf("%s.%s: no doc comment", k, f.Path)
			}
			if !f.Required && f.Default == "" {
				t.Errorf("%s.%s: optional, but no note says what unset means (spec.defaultNotes)", k, f.Path)
			}
			for _, c := range f.Fields {
				walk(c)
			}
		}
		for _, c := range f.Fields {
			walk(c)
		}
	}
}

// TestSchema_DefaultsMatchDefault: where Default fills a field in, the
// reference says the value it fills in.
func TestSchema_DefaultsMatchDefault(t *testing.T) {
	for _, k := range Kinds {
		zero, _ := newSpec(k)
		o := Default(Object{Kind: k, Metadata: Metadata{Name: "x"}, Spec: zero})
		f, _ := Schema(k)
		spec := f.Fields[3]
		v := reflect.ValueOf(o.Spec)
		for i := range v.NumField() {
			fv := v.Field(i)
			if fv.IsZero() || fv.Kind() != reflect.String {
				continue
			}
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			for _, c := range spec.Fields {
				// A default that depends on other fields is a sentence
				// naming each value it can be.
				if c.Name == name && !strings.Contains(c.Default, fv.String()) {
					t.Errorf("%s.spec.%s: reference says default %q, Default fills in %q", k, name, c.Default, fv.String())
				}
			}
		}
	}
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		path, wantType, wantDefault, wantErr string
	}{
		{path: "container.spec.resources.memory", wantType: "quantity", wantDefault: "no limit"},
		{path: "Task.spec.restartPolicy", wantType: "string", wantDefault: "Always"},
		{path: "containers.spec.ports", wantType: "[]object", wantDefault: "none published"},
		{path: "container.spec.ports.hostPort", wantType: "integer", wantDefault: "containerPort"},
		{path: "image.spec.ref", wantType: "string"},
		{path: "container.spec.resorces", wantErr: `Container.spec has no field "resorces"; did you mean "resources"?`},
		{path: "container.spec.image.x", wantErr: `Container.spec.image has no field "x" (it is a string)`},
		{path: "pod", wantErr: `"pod" is not a kind`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			f, err := Explain(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || f.Type != tc.wantType || f.Default != tc.wantDefault {
				t.Fatalf("got %+v, %v; want type %s default %q", f, err, tc.wantType, tc.wantDefault)
			}
		})
	}
}

// TestJSONSchema_Examples: the JSON Schema `berth schema` prints accepts
// every document of examples/manifests and refuses what berth refuses: an
// unknown field, a value outside an enum, a missing required field, a
// memory that is not a quantity. Checked by a JSON Schema validator, as
// an editor would.
func TestJSONSchema_Examples(t *testing.T) {
	raw, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(JSONSchemaID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(JSONSchemaID)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	check := func(t *testing.T, y string) error {
		j, err := yaml.YAMLToJSON([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		return sch.Validate(v)
	}
	files, _ := filepath.Glob(filepath.Join("..", "examples", "manifests", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no example manifests")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range strings.Split(string(b), "\n---") {
			if strings.TrimSpace(d) == "" {
				continue
			}
			if err := check(t, d); err != nil {
				t.Errorf("%s: document %d: %v", f, i+1, err)
			}
		}
	}
	for _, tc := range []struct{ name, doc string }{
		{"unknown field", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: busybox, comand: [sh]}"},
		{"bad enum", "apiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: web}\nspec: {container: web, restartPolicy: Sometimes}"},
		{"missing required", "apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: busybox}\nspec: {pullPolicy: Always}"},
		{"not a quantity", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: busybox, resources: {memory: 64MB}}"},
		{"bad name", "apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: Web_1}\nspec: {ref: busybox}"},
		{"unknown kind", "apiVersion: berth.dev/v1\nkind: Pod\nmetadata: {name: web}\nspec: {}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := check(t, tc.doc); err == nil {
				t.Fatalf("schema accepted:\n%s", tc.doc)
			}
			// and berth's own parser or validation refuses it too: the two agree
			objs, err := Parse("x.yaml", []byte(tc.doc))
			for _, o := range objs {
				if err == nil {
					err = Validate(Default(o))
				}
			}
			if err == nil {
				t.Fatalf("berth accepts what the schema refuses:\n%s", tc.doc)
			}
		})
	}
}
