package spec

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Field describes one field of a manifest kind: what `berth explain`
// prints, what `berth schema` turns into a JSON Schema and what
// docs/manifests.md tabulates. It is read off the Go types by reflection,
// with the doc comments beside the fields (zz_generated_docs.go, made by
// hack/specdoc), so the reference cannot drift from what the parser takes.
type Field struct {
	// Path is the field's dotted path from the object: spec.resources.memory
	// (a list's items add no segment).
	Path string
	// Name is the last segment of Path, as written in a manifest.
	Name string
	// Type is string, integer, boolean, quantity, duration, object,
	// map[string]string, or []T for a list of T.
	Type string
	// Required fields have no default and must be written.
	Required bool
	// Default is what an unset field means, in words where it depends on
	// other fields or on berthd's configuration.
	Default string
	// Enum lists the values a string field takes, when they are fixed.
	Enum []string
	// Doc says what the field means.
	Doc string
	// Fields are the fields of an object (or of a list's objects).
	Fields []Field
}

// defaultNotes say what an unset field means where Default's result alone
// cannot: a default that depends on another field, on the list item, or
// on berthd's configuration.
var defaultNotes = map[string]string{
	"Image.spec.pullPolicy":            "Always for an untagged ref or the tag latest, IfNotPresent otherwise",
	"Image.spec.snapshotter":           "berthd's configured snapshotter (overlayfs)",
	"Container.spec.runtime":           "berthd's configured runtime (runc)",
	"Container.spec.hostname":          "the container's name",
	"Container.spec.ports.hostPort":    "containerPort",
	"Container.spec.ports.protocol":    ProtocolTCP,
	"Container.spec.mounts.type":       "bind with a source, tmpfs without",
	"Network.spec.gateway":             "the subnet's first host address",
	"Network.spec.ipRange":             "the whole subnet",
	"Container.spec.resources.cpu":     "no limit",
	"Container.spec.resources.memory":  "no limit",
	"Container.spec.resources.pids":    "no limit",
	"Container.spec.ports.hostIP":      "every host address",
	"Container.spec.mounts.readOnly":   "false",
	"Container.spec.readOnlyRootfs":    "false",
	"Container.spec.init":              "false",
	"Container.spec.stopSignal":        "the image's STOPSIGNAL, else SIGTERM",
	"Container.spec.terminal":          "false",
	"Network.spec.ipMasq":              "false",
	"Network.spec.isolate":             "false",
	"Container.spec.command":           "the image's entrypoint",
	"Container.spec.args":              "the image's cmd",
	"Container.spec.workingDir":        "the image's working directory",
	"Container.spec.user":              "the image's user",
	"Image.spec.platform":              "the node's platform",
	"Network.spec.mtu":                 "the host's",
	"metadata.namespace":               DefaultNamespace,
	"apiVersion":                       APIVersion,
	"Container.spec.dns":               "the host's resolv.conf (loopback resolvers replaced)",
	"Container.spec.ports":             "none published",
	"Container.spec.resources":         "no limits",
	"Container.spec.mounts.options":    "none",
	"Container.spec.mounts":            "none",
	"Container.spec.env":               "the image's environment",
	"Container.spec.hosts":             "none",
	"Image.spec.source":                "none: the registry",
	"Image.spec.auth":                  "berthd's docker config and credential helpers",
	"metadata.labels":                  "none",
	"metadata.annotations":             "none",
	"Container.spec.dns.servers":       "the host's",
	"Container.spec.dns.searches":      "the host's",
	"Container.spec.dns.options":       "the host's",
	"Network.spec.master":              "none",
	"Task.spec.stopTimeout":            string(DefaultStopTimeout),
	"Container.spec.network":           string(DefaultNetwork),
	"Container.spec.mounts.source":     "none (a tmpfs)",
	"Image.spec.source.archive":        "none",
	"Image.spec.source.layout":         "none",
	"Network.spec.driver":              "bridge",
	"Task.spec.state":                  string(TaskRunning),
	"Task.spec.restartPolicy":          string(RestartAlways),
	"spec.livenessProbe":               "none: the task is alive while it runs",
	"spec.readinessProbe":              "none: the task is Ready while it runs",
	"spec.startupProbe":                "none",
	"Task.spec.dependsOn":              "none",
	"Dependency.condition":             string(ConditionReady),
	"Probe.exec":                       "none",
	"Probe.httpGet":                    "none",
	"Probe.tcpSocket":                  "none",
	"Probe.initialDelaySeconds":        "0",
	"Probe.periodSeconds":              "10",
	"Probe.timeoutSeconds":             "1",
	"Probe.failureThreshold":           "3",
	"Probe.successThreshold":           "1",
	"HTTPGetAction.path":               "/",
	"HTTPGetAction.host":               "127.0.0.1 (inside the container's network namespace)",
	"HTTPGetAction.scheme":             SchemeHTTP,
	"HTTPGetAction.httpHeaders":        "none",
	"TCPSocketAction.host":             "127.0.0.1 (inside the container's network namespace)",
	"Image.spec.updatePolicy":          "none: the image changes with its spec (or a re-pull under pullPolicy Always)",
	"Image.spec.updatePolicy.interval": string(DefaultUpdateInterval),
	"Image.spec.updatePolicy.timeout":  string(DefaultUpdateTimeout),
}

// Schema describes kind k: the object's fields (apiVersion, kind,
// metadata, spec) and, below them, every field of its spec.
func Schema(k Kind) (Field, error) {
	zero, err := newSpec(k)
	if err != nil {
		return Field{}, err
	}
	kinds := make([]string, len(Kinds))
	for i, k := range Kinds {
		kinds[i] = string(k)
	}
	root := Field{Path: "", Name: string(k), Type: "object", Doc: kindDoc(k)}
	root.Fields = []Field{
		{Path: "apiVersion", Name: "apiVersion", Type: "string", Enum: []string{APIVersion}, Doc: "apiVersion is " + APIVersion + "."},
		{Path: "kind", Name: "kind", Type: "string", Required: true, Enum: []string{string(k)}, Doc: "kind is " + string(k) + " (one of " + strings.Join(kinds, ", ") + ")."},
		describe(string(k), "metadata", reflect.TypeFor[Metadata](), true),
		describe(string(k), "spec", reflect.TypeOf(zero), true),
	}
	root.Fields[2].Doc = typeDocs["Metadata"]
	root.Fields[3].Doc = root.Doc
	for i := range root.Fields {
		f := &root.Fields[i]
		if d, ok := defaultNotes[f.Path]; ok && !f.Required {
			f.Default = d
		}
	}
	return root, nil
}

// Explain finds the field a path names: KIND[.field.path], the kind in
// any case (container.spec.resources.memory).
func Explain(path string) (Field, error) {
	head, rest, _ := strings.Cut(path, ".")
	var kind Kind
	for _, k := range Kinds {
		if strings.EqualFold(string(k), head) || strings.EqualFold(string(k)+"s", head) {
			kind = k
		}
	}
	if kind == "" {
		return Field{}, fmt.Errorf("%q is not a kind (one of Network, Image, Container, Task)", head)
	}
	f, err := Schema(kind)
	if err != nil || rest == "" {
		return f, err
	}
	for _, seg := range strings.Split(rest, ".") {
		i := slices.IndexFunc(f.Fields, func(c Field) bool { return c.Name == seg })
		if i < 0 {
			names := make([]string, len(f.Fields))
			for j, c := range f.Fields {
				names[j] = c.Name
			}
			msg := fmt.Sprintf("%s has no field %q", strings.TrimPrefix(string(kind)+"."+f.Path, "."), seg)
			if len(names) == 0 {
				return Field{}, fmt.Errorf("%s (it is a %s)", msg, f.Type)
			}
			if s := closest(seg, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			return Field{}, fmt.Errorf("%s (fields: %s)", msg, strings.Join(names, ", "))
		}
		f = f.Fields[i]
	}
	return f, nil
}

func kindDoc(k Kind) string {
	d := typeDocs[string(k)+"Spec"]
	return strings.Replace(d, string(k)+"Spec is the desired state of", "The desired state of", 1)
}

// describe reads the field called name of Go type t, found at path.
func describe(kind, path string, t reflect.Type, required bool) Field {
	f := Field{Path: path, Name: path[strings.LastIndexByte(path, '.')+1:], Required: required}
	f.Type, t = typeName(t)
	// A NetworkMode may also name a Network: its constants are not all.
	if t.Kind() == reflect.String && t.Name() != "string" && t != reflect.TypeFor[NetworkMode]() {
		f.Enum = enumValues[t.Name()]
	}
	if t.Kind() != reflect.Struct {
		return f
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		optional := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		c := describe(kind, path+"."+name, sf.Type, !optional)
		c.Doc = fieldDoc(t.Name(), sf.Name, name)
		if d, ok := defaultNotes[kind+"."+c.Path]; ok && optional {
			c.Default = d
		} else if d, ok := defaultNotes[c.Path]; ok && optional {
			c.Default = d
		} else if d, ok := defaultNotes[t.Name()+"."+name]; ok && optional {
			// A type used in several places (Probe) says it once.
			c.Default = d
		}
		f.Fields = append(f.Fields, c)
	}
	return f
}

// fieldDoc is a field's doc comment with the Go name it starts with
// replaced by the name a manifest writes.
func fieldDoc(typ, goName, name string) string {
	d := fieldDocs[typ+"."+goName]
	if rest, ok := strings.CutPrefix(d, goName+" "); ok {
		return "`" + name + "` " + rest
	}
	return d
}

// typeName names t as a manifest author sees it, and returns the type
// whose fields (or values) describe it further.
func typeName(t reflect.Type) (string, reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[Quantity]():
		return "quantity", t
	case t == reflect.TypeFor[Duration]():
		return "duration", t
	}
	switch t.Kind() {
	case reflect.String:
		return "string", t
	case reflect.Bool:
		return "boolean", t
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return "integer", t
	case reflect.Slice:
		n, e := typeName(t.Elem())
		return "[]" + n, e
	case reflect.Map:
		n, _ := typeName(t.Elem())
		return "map[string]" + n, t
	case reflect.Struct:
		return "object", t
	}
	return t.Kind().String(), t
}

// newSpec is the zero spec of kind k.
func newSpec(k Kind) (Spec, error) {
	switch k {
	case KindImage:
		return ImageSpec{}, nil
	case KindContainer:
		return ContainerSpec{}, nil
	case KindTask:
		return TaskSpec{}, nil
	case KindNetwork:
		return NetworkSpec{}, nil
	}
	return nil, fmt.Errorf("kind: %q is not one of Network, Image, Container, Task", k)
}
