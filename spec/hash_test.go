package spec

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

func mustOne(t testing.TB, name, data string) Object {
	t.Helper()
	objs, err := Parse(name, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("got %d objects", len(objs))
	}
	return objs[0]
}

func TestHash_Stable(t *testing.T) {
	t.Parallel()
	base := mustOne(t, "a.yaml", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: busybox, resources: {cpu: \"0.5\", memory: 64Mi}, command: [a, b]}\n")
	same := map[string]struct{ name, data string }{
		"key order":      {"b.yaml", "spec: {command: [a, b], resources: {memory: 64Mi, cpu: \"0.5\"}, image: busybox}\nmetadata: {name: web}\nkind: Container\napiVersion: berth.dev/v1\n"},
		"json":           {"c.json", `{"apiVersion":"berth.dev/v1","kind":"Container","metadata":{"name":"web"},"spec":{"image":"busybox","resources":{"cpu":0.5,"memory":"64Mi"},"command":["a","b"]}}`},
		"quantity forms": {"d.yaml", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: busybox, resources: {cpu: 500m, memory: \"67108864\"}, command: [a, b]}\n"},
		"defaults":       {"e.yaml", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web, labels: {a: b}}\nspec: {image: busybox, network: none, runtime: runc, resources: {cpu: \"0.5\", memory: 64Mi}, command: [a, b]}\n"},
	}
	for name, c := range same {
		if got, want := Hash(mustOne(t, c.name, c.data)), Hash(base); got != want {
			t.Errorf("%s: hash %s, want %s", name, got, want)
		}
	}
	other := mustOne(t, "f.yaml", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: busybox, resources: {cpu: \"0.5\", memory: 64Mi}, command: [b, a]}\n")
	if Hash(other) == Hash(base) {
		t.Error("a different command hashes the same")
	}
}

func TestDefault_DoesNotChangeInput(t *testing.T) {
	t.Parallel()
	o := mustOne(t, "a.yaml", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: busybox, mounts: [{target: /tmp}]}\n")
	d := Default(o)
	if o.Metadata.Namespace != "" || o.Spec.(ContainerSpec).Mounts[0].Type != "" {
		t.Error("Default changed its input")
	}
	if got := d.Spec.(ContainerSpec); got.Mounts[0].Type != MountTmpfs || got.Network != NetworkNone || got.Runtime != "" {
		t.Errorf("defaults not applied: %+v", got)
	}
	pulls := map[string]PullPolicy{"busybox": PullAlways, "busybox:latest": PullAlways, "host:5000/busybox": PullAlways,
		"host:5000/busybox:1.36": PullIfNotPresent, "busybox@sha256:" + string(make([]byte, 0)) + "00": PullIfNotPresent}
	for ref, want := range pulls {
		if got := defaultPullPolicy(ref); got != want {
			t.Errorf("defaultPullPolicy(%q) = %s, want %s", ref, got, want)
		}
	}
}

// roundTrip marshals objs as YAML and JSON, parses both, and checks each
// object keeps its hash and key.
func roundTrip(t *testing.T, objs []Object) {
	for _, o := range objs {
		j, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("marshal %s: %v", o.Key(), err)
		}
		y, err := yaml.JSONToYAML(j)
		if err != nil {
			t.Fatalf("to yaml: %v", err)
		}
		for name, data := range map[string][]byte{"rt.json": j, "rt.yaml": y} {
			back, err := Parse(name, data)
			if err != nil {
				t.Fatalf("re-parse of %s:\n%s\n%v", name, data, err)
			}
			if len(back) != 1 || Hash(back[0]) != Hash(o) || back[0].Key() != o.Key() {
				t.Fatalf("round trip of %s changed the object:\n%s", name, data)
			}
		}
	}
}

func TestParse_RoundTrip(t *testing.T) {
	t.Parallel()
	objs, err := Parse("demo.yaml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, objs)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(`[{"apiVersion":"berth.dev/v1","kind":"Task","metadata":{"name":"a"},"spec":{"container":"c","stopTimeout":5}}]`))
	f.Add([]byte("apiVersion: berth.dev/v1\nkind: List\nitems: [{apiVersion: berth.dev/v1, kind: Image, metadata: {name: a}, spec: {ref: a}}]\n"))
	f.Add([]byte(laughs()))
	f.Add([]byte("a: &a [1]\nb: *a\n"))
	f.Add([]byte("--- {kind: Task}\n...\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		slow := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("slow input %q", data)) })
		defer slow.Stop()
		objs, err := Parse("fuzz.yaml", data)
		if err != nil {
			// Errors are printed on terminals: whatever the input, they
			// are escaped text (no control characters but newlines).
			for _, r := range err.Error() {
				if r != '\n' && (unicode.IsControl(r) || r == utf8.RuneError) {
					t.Fatalf("error holds %q unescaped: %q", r, err.Error())
				}
			}
			return
		}
		for _, o := range objs {
			_ = Validate(Default(o))
		}
		roundTrip(t, objs)
	})
}

// The node's defaults are resolved once, by the store; the hash of an
// object that leaves them to a node configured as before is the hash it
// had when Default wrote overlayfs and runc into every object, so an
// upgrade recreates nothing; a node configured otherwise hashes (and runs)
// its own defaults.
func TestNodeDefaults_Resolve(t *testing.T) {
	img := mustOne(t, "i.yaml", "apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: b}\nspec: {ref: \"busybox:1\"}\n")
	ctr := mustOne(t, "c.yaml", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: b}\n")
	explicitImg := mustOne(t, "i.yaml", "apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: b}\nspec: {ref: \"busybox:1\", snapshotter: overlayfs}\n")
	explicitCtr := mustOne(t, "c.yaml", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: b, runtime: runc}\n")
	for _, tc := range []struct {
		name     string
		d        NodeDefaults
		o, same  Object
		wantSnap string
		wantRt   string
	}{
		{"built-in, image", NodeDefaults{}, img, explicitImg, "overlayfs", ""},
		{"configured as before, image", NodeDefaults{Snapshotter: "overlayfs", Runtime: "runc"}, img, explicitImg, "overlayfs", ""},
		{"built-in, container", NodeDefaults{}, ctr, explicitCtr, "", "runc"},
		{"configured crun, container", NodeDefaults{Runtime: "crun"}, ctr, Object{}, "", "crun"},
		{"configured native, image", NodeDefaults{Snapshotter: "native"}, img, Object{}, "native", ""},
		{"explicit beats configured", NodeDefaults{Runtime: "crun"}, explicitCtr, explicitCtr, "", "runc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.d.Resolve(tc.o)
			switch s := r.Spec.(type) {
			case ImageSpec:
				if s.Snapshotter != tc.wantSnap {
					t.Errorf("snapshotter %q, want %q", s.Snapshotter, tc.wantSnap)
				}
			case ContainerSpec:
				if s.Runtime != tc.wantRt {
					t.Errorf("runtime %q, want %q", s.Runtime, tc.wantRt)
				}
			}
			if tc.same.Spec != nil {
				if Hash(r) != Hash(tc.same) || Hash(r) != Hash(tc.o) {
					t.Errorf("hash changed: resolved %s, explicit %s, unresolved %s", Hash(r), Hash(tc.same), Hash(tc.o))
				}
			} else if Hash(r) == Hash(tc.o) {
				t.Errorf("a node default other than the built-in one hashes as the built-in one")
			}
		})
	}
}
