package spec

import (
	"fmt"
	"slices"
	"strings"
)

// LabelApplySet is the label `berth apply --applyset NAME` puts on every
// object it applies: the set's membership, which scopes --prune (as
// kubectl's applyset.kubernetes.io/part-of does).
const LabelApplySet = "berth.dev/applyset"

// Selector is a parsed label selector, as kubectl's -l takes them:
// requirements joined by commas, all of which must hold.
//
//	app=web  app==web  app!=web  app  !app  app in (a,b)  app notin (a,b)
type Selector []Requirement

// Requirement is one term of a selector.
type Requirement struct {
	Key    string
	Op     string // "=", "!=", "exists", "!exists", "in", "notin"
	Values []string
}

// ParseSelector parses s; the empty string selects everything.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	rest := strings.TrimSpace(s)
	if strings.HasSuffix(rest, ",") || strings.HasPrefix(rest, ",") {
		return nil, fmt.Errorf("selector %q: empty requirement", s)
	}
	for rest != "" {
		term, tail := splitTerm(rest)
		rest = strings.TrimSpace(tail)
		r, err := parseRequirement(strings.TrimSpace(term))
		if err != nil {
			return nil, fmt.Errorf("selector %q: %w", s, err)
		}
		sel = append(sel, r)
	}
	return sel, nil
}

// splitTerm cuts the first term off s at a comma outside parentheses.
func splitTerm(s string) (term, rest string) {
	depth := 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

func parseRequirement(t string) (Requirement, error) {
	if t == "" {
		return Requirement{}, fmt.Errorf("empty requirement")
	}
	for _, op := range []string{" notin ", " in "} {
		if k, vals, ok := strings.Cut(t, op); ok {
			vals = strings.TrimSpace(vals)
			if !strings.HasPrefix(vals, "(") || !strings.HasSuffix(vals, ")") {
				return Requirement{}, fmt.Errorf("%q: want %s(a,b)", t, op)
			}
			var vs []string
			for _, v := range strings.Split(vals[1:len(vals)-1], ",") {
				vs = append(vs, strings.TrimSpace(v))
			}
			return checkRequirement(Requirement{Key: strings.TrimSpace(k), Op: strings.TrimSpace(op), Values: vs})
		}
	}
	if k, v, ok := strings.Cut(t, "!="); ok {
		return checkRequirement(Requirement{Key: strings.TrimSpace(k), Op: "!=", Values: []string{strings.TrimSpace(v)}})
	}
	if k, v, ok := strings.Cut(t, "="); ok {
		v = strings.TrimPrefix(v, "=")
		return checkRequirement(Requirement{Key: strings.TrimSpace(k), Op: "=", Values: []string{strings.TrimSpace(v)}})
	}
	if k, ok := strings.CutPrefix(t, "!"); ok {
		return checkRequirement(Requirement{Key: strings.TrimSpace(k), Op: "!exists"})
	}
	return checkRequirement(Requirement{Key: t, Op: "exists"})
}

func checkRequirement(r Requirement) (Requirement, error) {
	v := &validator{}
	v.qualifiedName("key", r.Key)
	for _, val := range r.Values {
		if len(val) > maxLabelValue || !labelValueRE.MatchString(val) {
			v.add("value", "%q is not a valid label value", truncate(val, 80))
		}
	}
	if len(v.errs) > 0 {
		return Requirement{}, fmt.Errorf("%s", v.errs.Error())
	}
	return r, nil
}

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s {
		v, has := labels[r.Key]
		var ok bool
		switch r.Op {
		case "=":
			ok = has && v == r.Values[0]
		case "!=":
			ok = !has || v != r.Values[0]
		case "exists":
			ok = has
		case "!exists":
			ok = !has
		case "in":
			ok = has && slices.Contains(r.Values, v)
		case "notin":
			ok = !has || !slices.Contains(r.Values, v)
		}
		if !ok {
			return false
		}
	}
	return true
}

// String is the selector in the form ParseSelector reads.
func (s Selector) String() string {
	var terms []string
	for _, r := range s {
		switch r.Op {
		case "exists":
			terms = append(terms, r.Key)
		case "!exists":
			terms = append(terms, "!"+r.Key)
		case "in", "notin":
			terms = append(terms, r.Key+" "+r.Op+" ("+strings.Join(r.Values, ",")+")")
		default:
			terms = append(terms, r.Key+r.Op+r.Values[0])
		}
	}
	return strings.Join(terms, ",")
}
