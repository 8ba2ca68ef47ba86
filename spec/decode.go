package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// object decodes one object strictly and appends it.
func (p *parser) object(o Origin, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		p.fail(o, "", "", "want an object, got %s", jsonKind(v))
		return
	}
	_, hasAPI := m["apiVersion"]
	_, hasKind := m["kind"]
	if !hasAPI && !hasKind {
		// Not a manifest at all (a config file, /etc/shadow): one error,
		// not one per key, and no more of it than where it begins.
		if o.Item == 0 {
			p.fail(o, "", "", "not a berth manifest (no apiVersion, no kind); it begins %s", excerpt(firstLine(p.text)))
		} else {
			p.fail(o, "", "", "not a berth manifest (no apiVersion, no kind)")
		}
		return
	}
	name := objectName(m)
	kind, _ := m["kind"].(string)
	before := len(p.errs)
	badHeader := false
	for _, k := range sortedKeys(m) {
		switch k {
		case "apiVersion", "kind":
			if _, ok := m[k].(string); !ok {
				p.fail(o, name, k, "want a string, got %s", jsonKind(m[k]))
				badHeader = true
			}
		case "metadata":
			p.checkKeys(o, name, k, m[k], reflect.TypeFor[Metadata]())
		case "status":
			p.checkKeys(o, name, k, m[k], reflect.TypeFor[Status]())
		case "spec":
			if t := specType(Kind(kind)); t != nil {
				p.checkKeys(o, name, k, m[k], t)
			}
		default:
			p.fail(o, name, keyName(k), "%s", unknownField(k, []string{"apiVersion", "kind", "metadata", "spec", "status"}))
		}
	}
	if specType(Kind(kind)) == nil {
		if kind == "" {
			p.fail(o, name, "kind", "missing")
		} else {
			p.fail(o, name, "kind", "%s is not one of Image, Container, Task", excerpt(kind))
		}
	}
	// Unknown fields alone do not stop the decoding: the object is still
	// validated (Load), so one run reports every error of a document.
	if badHeader || specType(Kind(kind)) == nil {
		return
	}
	afterKeys := len(p.errs)
	var w struct {
		APIVersion string          `json:"apiVersion"`
		Kind       Kind            `json:"kind"`
		Metadata   json.RawMessage `json:"metadata"`
		Spec       json.RawMessage `json:"spec"`
		Status     json.RawMessage `json:"status"`
	}
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, &w); err != nil {
		p.fail(o, name, "", "%v", err)
		return
	}
	obj := Object{APIVersion: w.APIVersion, Kind: w.Kind, Origin: o}
	if err := unmarshalField(w.Metadata, &obj.Metadata); err != nil {
		p.typeError(o, name, "metadata", err)
	}
	if err := unmarshalField(w.Status, &obj.Status); err != nil {
		p.typeError(o, name, "status", err)
	}
	sp, err := decodeSpec(w.Kind, w.Spec, unmarshalField)
	if err != nil {
		p.typeError(o, name, "spec", err)
	}
	obj.Spec = sp
	if len(p.errs) > before {
		if len(p.errs) == afterKeys {
			p.partial = append(p.partial, obj)
		}
		return
	}
	p.objs = append(p.objs, obj)
}

func unmarshalField(b []byte, v any) error {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return json.Unmarshal(b, v)
}

// typeError reports a json error under the field path it names.
func (p *parser) typeError(o Origin, name, prefix string, err error) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := prefix
		if te.Field != "" {
			field += "." + te.Field
		}
		p.fail(o, name, field, "want %s, got %s", te.Type, te.Value)
		return
	}
	p.fail(o, name, prefix, "%v", strings.TrimPrefix(err.Error(), "json: "))
}

// objectName is "Kind namespace/name" as far as the raw object says.
func objectName(m map[string]any) string {
	kind, _ := m["kind"].(string)
	md, _ := m["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	ns, _ := md["namespace"].(string)
	if kind == "" || name == "" {
		return ""
	}
	if ns == "" {
		ns = DefaultNamespace
	}
	// Validation refuses a bad name later; until then it is quoted, not
	// printed as it is.
	return Key{Namespace: keyName(ns), Kind: Kind(keyName(kind)), Name: keyName(name)}.String()
}

func specType(k Kind) reflect.Type {
	switch k {
	case KindImage:
		return reflect.TypeFor[ImageSpec]()
	case KindContainer:
		return reflect.TypeFor[ContainerSpec]()
	case KindTask:
		return reflect.TypeFor[TaskSpec]()
	case KindNetwork:
		return reflect.TypeFor[NetworkSpec]()
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
var timeType = reflect.TypeFor[time.Time]()

// checkKeys reports every key of v that is not a field of t, comparing
// names exactly: encoding/json would match "Image" to "image" and drop
// unknown fields silently.
func (p *parser) checkKeys(o Origin, name, path string, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return // a type error, reported when decoding
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(m) {
			ft, ok := fields[k]
			if !ok {
				p.fail(o, name, path+"."+keyName(k), "%s", unknownField(k, slices.Collect(maps.Keys(fields))))
				continue
			}
			p.checkKeys(o, name, path+"."+k, m[k], ft)
		}
	case reflect.Slice:
		l, _ := v.([]any)
		for i, e := range l {
			p.checkKeys(o, name, fmt.Sprintf("%s[%d]", path, i), e, t.Elem())
		}
	case reflect.Map:
		m, _ := v.(map[string]any)
		for _, k := range sortedKeys(m) {
			p.checkKeys(o, name, path+"."+keyName(k), m[k], t.Elem())
		}
	}
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields maps a struct's JSON names to their types, flattening
// embedded structs as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			for k, v := range jsonFields(et) {
				fields[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	fieldCache.Store(t, fields)
	return fields
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
