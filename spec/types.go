package spec

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// APIVersion is the only apiVersion berth understands.
const APIVersion = "berth.dev/v1"

// Kind names a type of object.
type Kind string

// The kinds of object.
const (
	KindImage     Kind = "Image"
	KindContainer Kind = "Container"
	KindTask      Kind = "Task"
	KindNetwork   Kind = "Network"
)

// Kinds lists every kind, in dependency order (an Image before the
// Containers that use it, a Container before its Task).
var Kinds = []Kind{KindNetwork, KindImage, KindContainer, KindTask}

// Key identifies an object: (namespace, kind, name).
type Key struct {
	Namespace string
	Kind      Kind
	Name      string
}

// String is "Kind namespace/name", as error messages and logs show it.
func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// Metadata names an object and carries its labels and annotations.
type Metadata struct {
	// Name is unique per kind in the namespace (a DNS-1123 label, at most 63).
	Name string `json:"name"`
	// Namespace is the object's tenant (a DNS-1123 label; default: default).
	Namespace string `json:"namespace,omitempty"`
	// Labels are key=value pairs selectors (-l) match.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are key=value notes berth keeps but does not interpret.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Origin says where an object was read from. It is not part of the
// object's serialised form nor of its hash.
type Origin struct {
	// File is the name given to Parse (a path for the watched directory).
	File string
	// Dir is the directory relative paths in the object are relative to.
	Dir string
	// Document is the 1-based index of the non-empty document in File.
	Document int
	// Item is the 1-based index in a JSON array or `kind: List`, 0 otherwise.
	Item int
}

// Spec is the desired state of one kind: ImageSpec, ContainerSpec or
// TaskSpec, always held by value.
type Spec interface {
	// Kind is the kind this spec belongs to.
	Kind() Kind
	isSpec()
}

// Object is one parsed manifest object. Treat it as a value: Default and
// the stores return copies rather than editing one in place.
type Object struct {
	APIVersion string
	Kind       Kind
	Metadata   Metadata
	// Spec is ImageSpec, ContainerSpec or TaskSpec, matching Kind.
	Spec   Spec
	Status Status
	Origin Origin
}

// Key is the object's identity. The namespace is as written: call it on
// a defaulted object.
func (o Object) Key() Key {
	return Key{Namespace: o.Metadata.Namespace, Kind: o.Kind, Name: o.Metadata.Name}
}

// ResolvePath makes a path written in the object absolute against the
// directory of the manifest it came from. Absolute paths are returned clean.
func (o Object) ResolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) || o.Origin.Dir == "" {
		return filepath.Clean(p)
	}
	return filepath.Join(o.Origin.Dir, p)
}

// ImageSpec returns the spec of an Image.
func (o Object) ImageSpec() (ImageSpec, bool) { s, ok := o.Spec.(ImageSpec); return s, ok }

// ContainerSpec returns the spec of a Container.
func (o Object) ContainerSpec() (ContainerSpec, bool) { s, ok := o.Spec.(ContainerSpec); return s, ok }

// NetworkSpec returns the spec of a Network.
func (o Object) NetworkSpec() (NetworkSpec, bool) { s, ok := o.Spec.(NetworkSpec); return s, ok }

// TaskSpec returns the spec of a Task.
func (o Object) TaskSpec() (TaskSpec, bool) { s, ok := o.Spec.(TaskSpec); return s, ok }

// wireObject is the serialised form of an Object.
type wireObject struct {
	APIVersion string          `json:"apiVersion"`
	Kind       Kind            `json:"kind"`
	Metadata   Metadata        `json:"metadata"`
	Spec       json.RawMessage `json:"spec,omitempty"`
	Status     *Status         `json:"status,omitempty"`
}

// MarshalJSON writes the manifest form (Origin is left out).
func (o Object) MarshalJSON() ([]byte, error) {
	w := wireObject{APIVersion: o.APIVersion, Kind: o.Kind, Metadata: o.Metadata}
	if o.Spec != nil {
		b, err := json.Marshal(o.Spec)
		if err != nil {
			return nil, err
		}
		w.Spec = b
	}
	if !o.Status.IsZero() {
		st := o.Status
		w.Status = &st
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the manifest form. It is lenient about unknown
// fields, as encoding/json is; Parse is the strict reader.
func (o *Object) UnmarshalJSON(b []byte) error {
	var w wireObject
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	sp, err := decodeSpec(w.Kind, w.Spec, json.Unmarshal)
	if err != nil {
		return err
	}
	*o = Object{APIVersion: w.APIVersion, Kind: w.Kind, Metadata: w.Metadata, Spec: sp}
	if w.Status != nil {
		o.Status = *w.Status
	}
	return nil
}

// decodeSpec decodes raw into the spec type of kind.
func decodeSpec(kind Kind, raw json.RawMessage, unmarshal func([]byte, any) error) (Spec, error) {
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	switch kind {
	case KindImage:
		var s ImageSpec
		err := unmarshal(raw, &s)
		return s, err
	case KindContainer:
		var s ContainerSpec
		err := unmarshal(raw, &s)
		return s, err
	case KindTask:
		var s TaskSpec
		err := unmarshal(raw, &s)
		return s, err
	case KindNetwork:
		var s NetworkSpec
		err := unmarshal(raw, &s)
		return s, err
	}
	return nil, fmt.Errorf("kind: %q is not one of Network, Image, Container, Task", kind)
}
