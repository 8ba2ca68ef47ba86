package observed

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// Filter selects events with containerd's filter syntax: a list of
// alternatives (any may match), each a comma-separated list of conditions
// that must all hold. A condition is FIELD==VALUE, FIELD!=VALUE or
// FIELD~=REGEXP over the fields topic, namespace and event.KEY (a top-level
// key of the payload). An empty filter matches everything.
//
//	topic==/tasks/exit
//	namespace==edge,topic~=/images/
type Filter []conjunction

type conjunction []condition

type condition struct {
	field, op, value string
	re               *regexp.Regexp
}

// ParseFilters parses each string as one alternative.
func ParseFilters(exprs ...string) (Filter, error) {
	var f Filter
	for _, expr := range exprs {
		if strings.TrimSpace(expr) == "" {
			continue
		}
		var conj conjunction
		for _, part := range strings.Split(expr, ",") {
			c, err := parseCondition(strings.TrimSpace(part))
			if err != nil {
				return nil, fmt.Errorf("filter %q: %w", expr, err)
			}
			conj = append(conj, c)
		}
		f = append(f, conj)
	}
	return f, nil
}

func parseCondition(s string) (condition, error) {
	for _, op := range []string{"==", "!=", "~="} {
		i := strings.Index(s, op)
		if i <= 0 {
			continue
		}
		c := condition{field: strings.TrimSpace(s[:i]), op: op, value: strings.Trim(strings.TrimSpace(s[i+2:]), `"`)}
		switch {
		case c.field == "topic", c.field == "namespace", strings.HasPrefix(c.field, "event."):
		default:
			return c, fmt.Errorf("unknown field %q (topic, namespace, event.KEY): %w", c.field, errdefs.ErrInvalidArgument)
		}
		if op == "~=" {
			re, err := regexp.Compile(c.value)
			if err != nil {
				return c, fmt.Errorf("bad regexp %q: %w", c.value, errdefs.ErrInvalidArgument)
			}
			c.re = re
		}
		return c, nil
	}
	return condition{}, fmt.Errorf("condition %q has no ==, != or ~=: %w", s, errdefs.ErrInvalidArgument)
}

// Match reports whether ev passes the filter.
func (f Filter) Match(ev Event) bool {
	if len(f) == 0 {
		return true
	}
	for _, conj := range f {
		if conj.match(ev) {
			return true
		}
	}
	return false
}

func (c conjunction) match(ev Event) bool {
	var payload map[string]any
	for _, cond := range c {
		var got string
		switch {
		case cond.field == "topic":
			got = ev.Topic
		case cond.field == "namespace":
			got = ev.Namespace
		default:
			if payload == nil {
				payload = map[string]any{}
				_ = json.Unmarshal(ev.Payload, &payload)
			}
			if v, ok := payload[strings.TrimPrefix(cond.field, "event.")]; ok {
				got = fmt.Sprint(v)
			}
		}
		ok := false
		switch cond.op {
		case "==":
			ok = got == cond.value
		case "!=":
			ok = got != cond.value
		case "~=":
			ok = cond.re.MatchString(got)
		}
		if !ok {
			return false
		}
	}
	return true
}
