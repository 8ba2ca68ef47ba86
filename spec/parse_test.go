package spec

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

const example = `apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox, namespace: default, labels: {app: demo}}
spec:
  ref: 127.0.0.1:5000/library/busybox:1.36   # tag or digest
  pullPolicy: IfNotPresent
  platform: linux/amd64
  source: {archive: images/busybox.tar}
  snapshotter: overlayfs
---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: web}
spec:
  image: busybox
  command: [httpd, -f, -p, "8080"]
  env: [{name: GREETING, value: hello}]
  mounts: [{type: tmpfs, target: /tmp}]
  resources: {cpu: "0.5", memory: 64Mi, pids: 128}
  network: host
  runtime: runc
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: web}
spec:
  container: web
  state: Running
  restartPolicy: Always
  stopTimeout: 10s
`

func TestParse_Example(t *testing.T) {
	t.Parallel()
	objs, err := Load("/etc/berth/manifests/demo.yaml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Fatalf("got %d objects, want 3", len(objs))
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key().String())
	}
	if diff := cmp.Diff([]string{"Image default/busybox", "Container default/web", "Task default/web"}, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	img, _ := objs[0].ImageSpec()
	if got, want := objs[0].ResolvePath(img.Source.Archive), "/etc/berth/manifests/images/busybox.tar"; got != want {
		t.Errorf("ResolvePath = %q, want %q", got, want)
	}
	c, _ := objs[1].ContainerSpec()
	if n, _ := c.Resources.MilliValue(); n != 500 {
		t.Errorf("cpu = %dm, want 500m", n)
	}
	if n, _ := c.Resources.Memory.Value(); n != 64<<20 {
		t.Errorf("memory = %d, want %d", n, 64<<20)
	}
	task, _ := objs[2].TaskSpec()
	if d, _ := task.StopTimeout.Value(); d != 10*time.Second {
		t.Errorf("stopTimeout = %v", d)
	}
	if objs[2].Origin.Document != 3 {
		t.Errorf("document = %d, want 3", objs[2].Origin.Document)
	}
}

// MilliValue on Resources keeps the example readable.
func (r Resources) MilliValue() (int64, error) { return r.CPU.MilliValue() }

func TestParse_Errors(t *testing.T) {
	t.Parallel()
	container := func(spec string) string {
		return "apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: busybox}\nspec: {ref: busybox:1}\n---\n" +
			"apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec:\n" + spec
	}
	tests := []struct {
		name, data string
		want       []string
	}{
		{"bad quantity", container("  image: busybox\n  resources: {memory: 64Q}\n"),
			[]string{`web.yaml: document 2: Container default/web: spec.resources.memory: "64Q" is not a quantity`}},
		{"quantity hint", container("  image: busybox\n  resources: {memory: 64MB, cpu: 1}\n"),
			[]string{`web.yaml: document 2: Container default/web: spec.resources.memory: "64MB" is not a quantity; did you mean 64M or 64Mi?`}},
		{"quantity hint kilo", container("  image: busybox\n  resources: {memory: 512kb}\n"),
			[]string{`spec.resources.memory: "512kb" is not a quantity; did you mean 512k or 512Ki?`}},
		{"unknown field and invalid value", container("  image: busybox\n  comand: [x]\n  resources: {memory: 1gb}\n"),
			[]string{
				`web.yaml: document 2: Container default/web: spec.comand: unknown field; did you mean command?`,
				`web.yaml: document 2: Container default/web: spec.resources.memory: "1gb" is not a quantity; did you mean 1G or 1Gi?`,
			}},
		{"unknown field", container("  image: busybox\n  imagePullPolicy: Always\n"),
			[]string{`web.yaml: document 2: Container default/web: spec.imagePullPolicy: unknown field`}},
		{"wrong case", container("  Image: busybox\n"),
			[]string{`web.yaml: document 2: Container default/web: spec.Image: unknown field; did you mean image?`}},
		{"duplicate key", container("  image: busybox\n  image: other\n"),
			[]string{`web.yaml: document 2: yaml: unmarshal errors:`, `line 11: key "image" already set in map`}},
		{"wrong type", container("  image: busybox\n  command: [httpd, -p, 8080]\n"),
			[]string{`web.yaml: document 2: Container default/web: spec.command: want string, got number`}},
		{"several", container("  image: Busybox\n  network: Bridge\n  mounts: [{type: bind, target: tmp}]\n"),
			[]string{
				`web.yaml: document 2: Container default/web: spec.image: "Busybox" is not a DNS-1123 label`,
				`web.yaml: document 2: Container default/web: spec.mounts[0].target: "tmp" is not an absolute path`,
				`web.yaml: document 2: Container default/web: spec.mounts[0].source: missing (a bind mount needs a host path)`,
				`web.yaml: document 2: Container default/web: spec.network: "Bridge" is not one of bridge, host, none or a Network's name`,
			}},
		{"unknown kind", "apiVersion: berth.dev/v1\nkind: Pod\nmetadata: {name: x}\n",
			[]string{`web.yaml: document 1: Pod default/x: kind: "Pod" is not one of Image, Container, Task`}},
		{"api version", "apiVersion: v1\nkind: Task\nmetadata: {name: x}\nspec: {container: x}\n",
			[]string{`web.yaml: document 1: Task default/x: apiVersion: "v1" is not berth.dev/v1`}},
		{"bad name", "apiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: Web_1, namespace: -x}\nspec: {container: x}\n",
			[]string{`metadata.name: "Web_1" is not a DNS-1123 label`, `metadata.namespace: "-x" is not a DNS-1123 label`}},
		{"cri namespace", "apiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: x, namespace: k8s.io}\nspec: {container: x}\n",
			[]string{`metadata.namespace: "k8s.io" is reserved for the CRI`}},
		{"task enums", "apiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: x}\nspec: {state: running, restartPolicy: Sometimes, stopTimeout: 10}\n",
			[]string{`spec.container: missing`, `spec.state: "running" is not one of Running, Stopped, Paused`,
				`spec.restartPolicy: "Sometimes" is not one of`, `spec.stopTimeout: "10" is not a duration`}},
		{"image", "apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: x}\nspec: {ref: 'busybox@sha256:abc', source: {archive: a, layout: b}, snapshotter: zfs}\n",
			[]string{`spec.ref: "busybox@sha256:abc" is not an image reference`, `spec.source: set exactly one of archive and layout`,
				`spec.snapshotter: "zfs" is not one of overlayfs, native, btrfs`}},
		{"syntax line", "apiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: x}\nspec: {container: x}\n---\n\n\nkind: [\n",
			[]string{`web.yaml: document 2: yaml: line 8: did not find expected node content`}},
		{"not utf8", "kind: \xff\xfe\n", []string{`web.yaml: not UTF-8 text`}},
		{"scalar doc", "hello\n", []string{`web.yaml: document 1: want an object, got a string`}},
		{"json dup", `{"apiVersion":"berth.dev/v1","kind":"Task","kind":"Task"}`, []string{`web.yaml: document 1: duplicate key "kind"`}},
		{"user", container("  image: busybox\n  user: '4294967296'\n"), []string{`spec.user: "4294967296" is not uid[:gid]`}},
		{"env dup", container("  image: busybox\n  env: [{name: A, value: one}, {name: A, value: two}]\n"), []string{`spec.env[1].name: "A" is set twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("web.yaml", []byte(tt.data))
			if err == nil {
				t.Fatal("got no error")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error is not ErrInvalidArgument: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error\n%v\nwant it to contain\n%s", err, w)
				}
			}
		})
	}
}

func TestParse_Shapes(t *testing.T) {
	t.Parallel()
	task := `{"apiVersion":"berth.dev/v1","kind":"Task","metadata":{"name":"%s"},"spec":{"container":"c"}}`
	tests := []struct {
		name string
		data string
		want int
	}{
		{"empty", "", 0},
		{"comments only", "# nothing\n---\n# more\n", 0},
		{"leading separator", "---\n" + fmt.Sprintf(task, "a") + "\n", 1},
		{"json stream", fmt.Sprintf(task, "a") + "\n" + fmt.Sprintf(task, "b"), 2},
		{"json array", "[" + fmt.Sprintf(task, "a") + "," + fmt.Sprintf(task, "b") + "]", 2},
		{"list", `{"apiVersion":"berth.dev/v1","kind":"List","items":[` + fmt.Sprintf(task, "a") + "]}", 1},
		{"yaml list", "- " + fmt.Sprintf(task, "a") + "\n- " + fmt.Sprintf(task, "b") + "\n", 2},
		{"inline doc", "--- " + fmt.Sprintf(task, "a") + "\n", 1},
		{"null doc", "~\n---\n" + fmt.Sprintf(task, "a") + "\n", 1},
		{"status kept", "apiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: a}\nspec: {container: c}\nstatus: {observedGeneration: 2, pid: 42, conditions: [{type: Ready, status: 'True'}]}\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Load("x.json", []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != tt.want {
				t.Errorf("got %d objects, want %d", len(objs), tt.want)
			}
		})
	}
}

func TestParse_Bounds(t *testing.T) {
	t.Parallel()
	t.Run("size", func(t *testing.T) {
		_, err := Parse("big.yaml", make([]byte, MaxFileSize+1))
		if err == nil || !strings.Contains(err.Error(), "more than the limit") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("10k documents", func(t *testing.T) {
		var b strings.Builder
		for i := range MaxDocuments {
			fmt.Fprintf(&b, "---\napiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: t%d}\nspec: {container: c}\n", i)
		}
		start := time.Now()
		objs, err := Load("many.yaml", []byte(b.String()))
		if err != nil || len(objs) != MaxDocuments {
			t.Fatalf("got %d objects, %v", len(objs), err)
		}
		t.Logf("%d documents (%d bytes) in %v", MaxDocuments, b.Len(), time.Since(start))
		b.WriteString("---\napiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: one-more}\nspec: {container: c}\n")
		if _, err := Parse("many.yaml", []byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than 10000 documents") {
			t.Errorf("got %v", err)
		}
	})
	bombs := map[string]string{
		"billion laughs": laughs(),
		"big anchor":     bigAnchor(),
		"deep nesting":   strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		"deep json":      strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100),
	}
	for name, doc := range bombs {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse("bomb.yaml", []byte(doc))
			if err == nil {
				t.Fatal("bomb parsed")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
			t.Logf("%v: %.200s", time.Since(start), err)
		})
	}
}

func laughs() string {
	b := "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	prev := "a"
	for i := range 9 {
		n := fmt.Sprintf("l%d", i)
		b += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 8) + "*" + prev + "]\n"
		prev = n
	}
	return b
}

// bigAnchor is one large anchor referenced many times: go-yaml's ratio
// check alone lets it expand to millions of nodes.
func bigAnchor() string {
	b := "x: &x [" + strings.Repeat("a, ", 20000) + "a]\n"
	b += "y: &y [" + strings.Repeat("*x, ", 60) + "*x]\n"
	b += "z: [" + strings.Repeat("*y, ", 60) + "*y]\n"
	return b
}

// A path handed to berth apply -f may be anything (a symlink to
// /etc/shadow): errors say it is not a manifest and quote no more than a
// short, escaped prefix of a line, never the lines themselves.
func TestParse_NotAManifestIsNotEchoed(t *testing.T) {
	shadow := "root:$y$j9T$SaltSaltSalt$HashHashHashHashHashHash:20228:0:99999:7:::\n" +
		"daemon:*:20228:0:99999:7:::\n" +
		"alice:$6$pepper$0123456789abcdefSECRETSECRET:20228:0:99999:7:::\n"
	env := "API_TOKEN=tok_live_0123456789SECRET: 1\npassword: hunter2\n"
	tests := []struct {
		name, data string
		want       string
		secrets    []string
	}{
		{"shadow", shadow, `web.yaml: document 1: not a berth manifest (no apiVersion, no kind); it begins "root:$y$j9T$"…`,
			[]string{"SaltSalt", "HashHash", "daemon", "alice", "SECRET"}},
		{"env", env, `not a berth manifest`, []string{"hunter2", "tok_live", "SECRET"}},
		{"control bytes", `{"apiVersion":"berth.dev/v1","kind":"Task","metadata":{"name":"x"},"\u001b[2J\u001b]0;pwned\u0007":1}`,
			`"\x1b[2J\x1b]0;pwne"…: unknown field`, []string{"\x1b"}},
		{"key in a manifest", "apiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: x}\nspec: {container: x}\nAPI_TOKEN=tok_live_0123456789SECRET: 1\n",
			`"API_TOKEN=to"…: unknown field`, []string{"SECRET", "tok_live"}},
		{"kind", "apiVersion: berth.dev/v1\nkind: tok_live_0123456789SECRET\n", `kind: "tok_live_012"… is not one of`, []string{"SECRET"}},
		{"duplicate key", "{\"apiVersion\":\"berth.dev/v1\",\"tok_live_0123456789SECRET\":1,\"tok_live_0123456789SECRET\":2}",
			`duplicate key "tok_live_012"…`, []string{"SECRET"}},
		{"yaml duplicate", "apiVersion: berth.dev/v1\ntok_live_0123456789SECRET: 1\ntok_live_0123456789SECRET: 2\n",
			`"tok_live_012"…`, []string{"SECRET"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("web.yaml", []byte(tt.data))
			if err == nil {
				t.Fatal("got no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("got error\n%s\nwant it to contain\n%s", msg, tt.want)
			}
			for _, s := range tt.secrets {
				if strings.Contains(msg, s) {
					t.Errorf("error echoes %q of the file:\n%s", s, msg)
				}
			}
		})
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"text", []byte("kind: Task\n"), ""},
		{"latin-1", []byte("name: caf\xe9\n"), "not UTF-8 text"},
		{"binary", []byte("\x7fELF\x02\x01\x01\x00\x00"), "not text: holds NUL bytes"},
		{"large", make([]byte, MaxFileSize+1), "more than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckText(tt.data)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("CheckText = %v, want %q", err, tt.want)
			}
		})
	}
}
