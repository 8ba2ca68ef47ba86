package spec

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	goyaml "sigs.k8s.io/yaml/goyaml.v2"
)

type yamlDoc struct {
	text []byte
	line int // 1-based line of the document's first line in the file
}

// splitYAML cuts a YAML stream at `---` (and `...`) lines, as kubectl
// does. Content after `--- ` on the marker line starts the next document.
// Documents of only blanks and comments are dropped.
func splitYAML(data []byte) []yamlDoc {
	var docs []yamlDoc
	var cur []byte
	curLine, line := 1, 0
	flush := func() {
		if !blankYAML(cur) {
			docs = append(docs, yamlDoc{text: cur, line: curLine})
		}
		cur = nil
	}
	for len(data) > 0 {
		line++
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i+1], data[i+1:]
		}
		if marker(l, "---") || marker(l, "...") {
			flush()
			curLine = line
			rest := bytes.TrimSpace(l[3:])
			if len(rest) > 0 && rest[0] != '#' && l[0] == '-' {
				// Keep the column of the content so indentation still parses.
				cur = append(cur, bytes.Repeat([]byte(" "), 4)...)
				cur = append(cur, bytes.TrimLeft(l[3:], " \t")...)
			} else {
				cur = append(cur, '\n') // keep line numbers right
			}
			continue
		}
		cur = append(cur, l...)
	}
	flush()
	return docs
}

// marker reports whether line is the document marker m alone or followed
// by white space.
func marker(line []byte, m string) bool {
	if !bytes.HasPrefix(line, []byte(m)) {
		return false
	}
	rest := line[len(m):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r' || rest[0] == '\n'
}

func blankYAML(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var l []byte
		if i < 0 {
			l, b = b, nil
		} else {
			l, b = b[:i], b[i+1:]
		}
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' && l[0] != '%' {
			return false
		}
	}
	return true
}

// errAliasBudget stops a guarded decode.
var errAliasBudget = errors.New("YAML aliases expand to too many nodes")

// The guard decodes into zero-size values, so it costs time proportional
// to the expanded document but no memory. The budget is shared through a
// package variable because go-yaml creates the guard values itself; the
// mutex serialises guarded decodes, which only documents that contain
// both an anchor and an alias character need.
var (
	guardMu   sync.Mutex
	guardLeft int
)

type guardNode struct{}

func (g *guardNode) UnmarshalYAML(unmarshal func(any) error) error {
	guardLeft--
	if guardLeft < 0 {
		return errAliasBudget
	}
	var seq []guardNode
	if err := unmarshal(&seq); err == nil {
		return nil
	} else if errors.Is(err, errAliasBudget) {
		return err
	}
	var m map[guardNode]guardNode
	if err := unmarshal(&m); err == nil {
		return nil
	} else if errors.Is(err, errAliasBudget) {
		return err
	}
	var s any
	return unmarshal(&s)
}

// guardAliases refuses a document whose aliases expand it to more than
// about twice the nodes its text can hold ("billion laughs", or one large
// anchor referenced many times). go-yaml's own alias-ratio check misses
// the second kind.
func guardAliases(doc []byte) error {
	if !bytes.Contains(doc, []byte("&")) || !bytes.Contains(doc, []byte("*")) {
		return nil
	}
	guardMu.Lock()
	defer guardMu.Unlock()
	budget := len(doc)/2 + 10000
	guardLeft = budget
	var g guardNode
	err := goyaml.Unmarshal(doc, &g)
	if err != nil && guardLeft < 0 {
		return fmt.Errorf("YAML aliases expand the document to more than %d nodes", budget)
	}
	// Other errors are reported, with better context, by the real parse.
	return nil
}
