package remote

import (
	"berth.dev/berth/content/reference"
	"github.com/google/go-containerregistry/pkg/name"
)

// ParseRef is reference.Parse, kept for the callers that pull and push and
// so import this package anyway.
func ParseRef(s string) (name.Reference, error) { return reference.Parse(s) }
