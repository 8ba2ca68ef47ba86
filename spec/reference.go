package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// JSONSchemaID is the $id of the schema JSONSchema writes.
const JSONSchemaID = "https://berth.dev/schemas/v1/manifest.json"

// JSONSchema is a JSON Schema (draft 2020-12) of one manifest document of
// any kind, for editors (the YAML language server validates and completes
// with it) and for checks outside berth. It says what the parser takes:
// unknown fields are refused (additionalProperties false), required ones
// listed, fixed values enumerated. Rules that span fields (a gateway
// inside the subnet) are berth validate's.
func JSONSchema() ([]byte, error) {
	var kinds []any
	for _, k := range Kinds {
		f, err := Schema(k)
		if err != nil {
			return nil, err
		}
		s := jsonSchemaOf(f)
		s["title"] = string(k)
		kinds = append(kinds, s)
	}
	doc := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         JSONSchemaID,
		"title":       "berth manifest",
		"description": "One berth.dev/v1 object: a Network, Image, Container or Task (generated from berth's spec types by `berth schema`).",
		"oneOf":       kinds,
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// quantityPattern is the text of a Quantity (a number may also be written
// bare).
const quantityPattern = `^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)((Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE][+-]?[0-9]{1,3})?$`

// durationPattern is a Go duration with units ("10s", "1m30s").
const durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`

func jsonSchemaOf(f Field) map[string]any {
	s := map[string]any{}
	desc := f.Doc
	if f.Default != "" {
		desc = strings.TrimSpace(desc + " Default: " + f.Default + ".")
	}
	if desc != "" {
		s["description"] = desc
	}
	switch t := f.Type; {
	case strings.HasPrefix(t, "[]"):
		item := f
		item.Type, item.Doc, item.Default = strings.TrimPrefix(t, "[]"), "", ""
		s["type"] = "array"
		s["items"] = jsonSchemaOf(item)
		return s
	case strings.HasPrefix(t, "map[string]"):
		s["type"] = "object"
		s["additionalProperties"] = map[string]any{"type": "string"}
	case t == "object":
		s["type"] = "object"
		props := map[string]any{}
		var req []string
		for _, c := range f.Fields {
			props[c.Name] = jsonSchemaOf(c)
			if c.Required {
				req = append(req, c.Name)
			}
		}
		s["properties"] = props
		s["additionalProperties"] = false
		if len(req) > 0 {
			s["required"] = req
		}
	case t == "quantity":
		s["anyOf"] = []any{map[string]any{"type": "number"}, map[string]any{"type": "string", "pattern": quantityPattern}}
	case t == "duration":
		s["type"] = "string"
		s["pattern"] = durationPattern
	case t == "string" || t == "integer" || t == "boolean":
		s["type"] = t
	}
	if len(f.Enum) > 0 {
		s["enum"] = f.Enum
	}
	if f.Path == "metadata.name" {
		s["pattern"] = dnsLabelRE.String()
		s["maxLength"] = 63
	}
	return s
}

// MarkdownReference is docs/manifests.md: every kind's fields with their
// type, default and meaning. A test checks the committed file is this.
func MarkdownReference() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("<!-- Generated from the spec types by `make generate` (spec.MarkdownReference). Do not edit. -->\n")
	b.WriteString("# Manifest reference\n\n")
	b.WriteString("Every object is one YAML (or JSON) document with `apiVersion: " + APIVersion + "`, a `kind`, `metadata` and a `spec`; a file may hold several documents separated by `---`. Unknown fields are errors. `berth explain KIND[.field.path]` prints the same reference from the binary, and `berth schema` a JSON Schema of it for editors.\n\n")
	b.WriteString("A Container's `spec.image` names an **Image object** in the same namespace, not an image reference: declare the Image (its `spec.ref` is the reference) and name it.\n")
	for _, k := range Kinds {
		f, err := Schema(k)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", k, f.Doc)
		b.WriteString("| field | type | required / default | meaning |\n|---|---|---|---|\n")
		var rows func(prefix string, fs []Field)
		rows = func(prefix string, fs []Field) {
			for _, c := range fs {
				if c.Path == "kind" || c.Path == "apiVersion" {
					continue
				}
				need := "required"
				if !c.Required {
					need = "default: " + c.Default
					if c.Default == "" {
						need = "optional"
					}
				}
				doc := c.Doc
				if len(c.Enum) > 0 {
					doc += " One of: `" + strings.Join(c.Enum, "`, `") + "`."
				}
				path := prefix + c.Name
				fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", path, c.Type, cell(need), cell(doc))
				if strings.HasPrefix(c.Type, "[]") {
					path += "[]" // the items of a list: spec.ports[].hostPort
				}
				rows(path+".", c.Fields)
			}
		}
		rows("", f.Fields)
	}
	return b.Bytes(), nil
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
