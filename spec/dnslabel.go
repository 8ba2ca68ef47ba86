package spec

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// DefaultNamespace is the namespace of an object that names none, and the
// one namespace the node always has and never removes.
const DefaultNamespace = "default"

// CRINamespace is the namespace of the objects the kubelet makes through
// the CRI, named as containerd names it so that tools written for
// containerd's (crictl, nerdctl -n k8s.io) look in the same place. It is
// the one namespace that is not a DNS-1123 label: the API and the CLI
// accept it, manifests may not claim it (the CRI owns what is in it).
const CRINamespace = "k8s.io"

// ValidateNamespace refuses (errdefs.ErrInvalidArgument) a namespace that
// is neither a DNS-1123 label nor CRINamespace. The dot in CRINamespace is
// safe where namespaces become paths and keys: it is never "." or "..".
func ValidateNamespace(ns string) error {
	if ns == CRINamespace {
		return nil
	}
	return ValidateName("namespace", ns)
}

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
