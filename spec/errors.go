package spec

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// FieldError is one problem with one field of one object. Its message is
//
//	web.yaml: document 2: Container default/web: spec.resources.memory: "64Q" is not a quantity
//
// where the file and document parts are left out when unknown (objects
// applied through the API) and the object part when the error is in a
// document that did not yield an object.
type FieldError struct {
	Origin Origin
	// Object is "Kind namespace/name", empty when not known yet.
	Object string
	// Field is a path such as spec.mounts[1].target; empty for a whole
	// document.
	Field  string
	Detail string
}

// Error implements error.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Origin.File != "" {
		b.WriteString(e.Origin.File)
		b.WriteString(": ")
	}
	if e.Origin.Document > 0 {
		fmt.Fprintf(&b, "document %d: ", e.Origin.Document)
	}
	if e.Origin.Item > 0 {
		fmt.Fprintf(&b, "item %d: ", e.Origin.Item)
	}
	if e.Object != "" {
		b.WriteString(e.Object)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Detail)
	return b.String()
}

// Unwrap makes every FieldError an errdefs.ErrInvalidArgument.
func (e *FieldError) Unwrap() error { return errdefs.ErrInvalidArgument }

// ErrorList is every problem found, in order. It is an error only when
// not empty; Validate and Parse return nil rather than an empty list.
type ErrorList []*FieldError

// Error joins the messages, one per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes each FieldError to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// orNil returns nil for an empty list, so a nil check works.
func (l ErrorList) orNil() error {
	if len(l) == 0 {
		return nil
	}
	return l
}
