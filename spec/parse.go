package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// Bounds on what Parse reads.
const (
	// MaxFileSize is the largest manifest file, in bytes.
	MaxFileSize = 4 << 20
	// MaxDocuments is the most objects one file may hold.
	MaxDocuments = 10000
	// MaxDepth is the deepest nesting of maps and lists in a document.
	// A manifest needs about 6.
	MaxDepth = 64
)

// Parse reads the objects in data: multi-document YAML (documents
// separated by `---` lines), or JSON (one value or several concatenated).
// A document may also be a list of objects, or an object of `kind: List`
// with `items`. Parsing is strict: unknown fields, fields in the wrong
// case, duplicate keys and wrong types are errors.
//
// filename is used in error messages and, through Origin.Dir, to resolve
// relative paths; Parse does not open it. On any error Parse returns no
// objects and an ErrorList of every document's errors.
func Parse(filename string, data []byte) ([]Object, error) {
	p := parse(filename, data)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return p.objs, nil
}

func parse(filename string, data []byte) *parser {
	base := Origin{File: filename, Dir: filepath.Dir(filename)}
	if filename == "" {
		base.Dir = ""
	}
	p := &parser{base: base}
	if err := CheckText(data); err != nil {
		p.errs = ErrorList{{Origin: base, Detail: err.Error()}}
		return p
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		p.parseJSONStream(data)
	} else {
		p.parseYAML(data)
	}
	return p
}

// CheckText refuses what cannot be a manifest file before it is parsed:
// more than MaxFileSize bytes, not UTF-8, or holding NUL bytes (binary).
// The watched directory and the CLI's -f apply the same rule.
func CheckText(data []byte) error {
	if len(data) > MaxFileSize {
		return fmt.Errorf("file is more than the limit of %d bytes", MaxFileSize)
	}
	if !utf8.Valid(data) {
		return errors.New("not UTF-8 text")
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return errors.New("not text: holds NUL bytes")
	}
	return nil
}

// Load parses, defaults and validates: what a source does with a file.
func Load(filename string, data []byte) ([]Object, error) {
	p := parse(filename, data)
	errs := p.errs
	// An object whose only fault was an unknown field is validated too, so
	// its other errors come in the same report, in document order.
	for _, o := range p.partial {
		if err := Validate(Default(o)); err != nil {
			errs = append(errs, err.(ErrorList)...)
		}
	}
	if len(p.errs) > 0 {
		sortByDocument(errs)
		return nil, errs
	}
	objs := p.objs
	for i := range objs {
		objs[i] = Default(objs[i])
		if err := Validate(objs[i]); err != nil {
			errs = append(errs, err.(ErrorList)...)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return objs, nil
}

type parser struct {
	base Origin
	// text is the document being read, for the excerpt that says where a
	// file that is not a manifest begins.
	text []byte
	docs int
	objs []Object
	// partial are objects that decoded but carry an unknown field: not
	// returned, only validated for the rest of their errors.
	partial []Object
	errs    ErrorList
}

func (p *parser) fail(o Origin, object, field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Origin: o, Object: object, Field: field, Detail: fmt.Sprintf(format, args...)})
}

// nextDoc numbers a non-empty document; false when there are too many.
func (p *parser) nextDoc() (Origin, bool) {
	p.docs++
	o := p.base
	o.Document = p.docs
	if p.docs > MaxDocuments {
		p.errs = append(p.errs, &FieldError{Origin: p.base, Detail: fmt.Sprintf("more than %d documents", MaxDocuments)})
		return o, false
	}
	return o, true
}

func (p *parser) parseJSONStream(data []byte) {
	for {
		data = bytes.TrimLeft(data, " \t\r\n")
		if len(data) == 0 {
			return
		}
		o, ok := p.nextDoc()
		if !ok {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		p.text = data
		v, err := decodeValue(dec, 0)
		if err != nil {
			p.fail(o, "", "", "%s", scrub(err.Error()))
			return // the rest of the stream cannot be trusted
		}
		p.document(o, v)
		data = data[dec.InputOffset():]
	}
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func (p *parser) parseYAML(data []byte) {
	for _, d := range splitYAML(data) {
		o, ok := p.nextDoc()
		if !ok {
			return
		}
		p.text = d.text
		if err := guardAliases(d.text); err != nil {
			p.fail(o, "", "", "%s", scrub(err.Error()))
			continue
		}
		j, err := yaml.YAMLToJSONStrict(d.text)
		if err != nil {
			// Make the parser's line numbers count from the top of the file.
			msg := yamlLineRE.ReplaceAllStringFunc(err.Error(), func(s string) string {
				n, _ := strconv.Atoi(s[len("line "):])
				return "line " + strconv.Itoa(n+d.line-1)
			})
			p.fail(o, "", "", "%s", scrub(msg))
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.UseNumber()
		v, err := decodeValue(dec, 0)
		if err != nil {
			p.fail(o, "", "", "%s", scrub(err.Error()))
			continue
		}
		if v == nil { // a document of only `~` or `null`
			p.docs--
			continue
		}
		p.document(o, v)
	}
}

// document turns one decoded document into objects.
func (p *parser) document(o Origin, v any) {
	switch t := v.(type) {
	case []any:
		for i, it := range t {
			io := o
			io.Item = i + 1
			p.object(io, it)
		}
	case map[string]any:
		if k, _ := t["kind"].(string); k == "List" {
			p.list(o, t)
			return
		}
		p.object(o, t)
	default:
		p.fail(o, "", "", "want an object, got %s", jsonKind(v))
	}
}

func (p *parser) list(o Origin, m map[string]any) {
	for k := range m {
		if k != "apiVersion" && k != "kind" && k != "items" && k != "metadata" {
			p.fail(o, "", keyName(k), "unknown field in a List")
		}
	}
	items, ok := m["items"].([]any)
	if !ok && m["items"] != nil {
		p.fail(o, "", "items", "want a list, got %s", jsonKind(m["items"]))
		return
	}
	for i, it := range items {
		io := o
		io.Item = i + 1
		p.object(io, it)
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// decodeValue reads one JSON value, refusing duplicate keys and nesting
// deeper than MaxDepth. encoding/json alone keeps the last duplicate.
func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", MaxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("duplicate key %q", k)
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
			_, err := dec.Token()
			return m, err
		case '[':
			l := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token()
			return l, err
		}
		return nil, errors.New("unexpected " + t.String())
	}
	return tok, nil
}

// sortByDocument orders errors by file and document, keeping the order
// within a document (keys, then validation).
func sortByDocument(errs ErrorList) {
	slices.SortStableFunc(errs, func(a, b *FieldError) int {
		if c := strings.Compare(a.Origin.File, b.Origin.File); c != 0 {
			return c
		}
		return a.Origin.Document - b.Origin.Document
	})
}
