package spec

import (
	"bytes"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// ExcerptRunes is the most of a line an error quotes from a file. A
// manifest path may point anywhere (berth apply -f on a symlink to
// /etc/shadow): an error must say where the file stops being a manifest
// without reproducing what it holds.
const ExcerptRunes = 12

// excerpt quotes the start of s, escaped, marking a cut with "…".
func excerpt(s string) string {
	cut := false
	if utf8.RuneCountInString(s) > ExcerptRunes {
		r := []rune(s)
		s, cut = string(r[:ExcerptRunes]), true
	}
	q := strconv.Quote(s)
	if cut {
		q += "…"
	}
	return q
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

// keyName is how an error names a key it does not know: as it is when it
// looks like a field name, else as an excerpt.
func keyName(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return excerpt(k)
}

// quoted matches what a YAML or JSON parser quotes of the input in its
// messages ("…" and `…`).
var quoted = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`")

// scrub cuts every quotation of the input in a parser's message down to
// an excerpt.
func scrub(msg string) string {
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		inner := q[1 : len(q)-1]
		if q[0] == '"' {
			if u, err := strconv.Unquote(q); err == nil {
				inner = u
			}
		}
		return excerpt(inner)
	})
}

// firstLine is the first line of text that is not blank nor a comment.
func firstLine(text []byte) string {
	for len(text) > 0 {
		l := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			l, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return string(l)
		}
	}
	return ""
}
