package spec

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// DefaultNamespace is the namespace of an object that names none, and the
// one namespace the node always has and never removes.
const DefaultNamespace = "default"

// IsDNSLabel reports whether s is a DNS-1123 label: lower case letters,
// digits and '-', starting and ending alphanumeric, at most 63. Names and
// namespaces become path elements and bbolt keys, so this one rule is what
// keeps "..", "a/b" and "" out of every path the node makes.
func IsDNSLabel(s string) bool {
	return len(s) <= 63 && dnsLabelRE.MatchString(s)
}

// ValidateName refuses (errdefs.ErrInvalidArgument) an s that is not a
// DNS-1123 label; what names it in the error ("namespace", "container id").
func ValidateName(what, s string) error {
	if !IsDNSLabel(s) {
		return fmt.Errorf("%s %q is not a DNS-1123 label (lower case letters, digits and '-', at most 63): %w", what, truncate(s, 80), errdefs.ErrInvalidArgument)
	}
	return nil
}
