package local

import (
	"testing"

	"berth.dev/berth/content"
	"berth.dev/berth/content/testsuite"
)

// TestConformance runs the content.Store contract suite against a store on
// a fresh root.
func TestConformance(t *testing.T) {
	t.Parallel()
	testsuite.Run(t, func(t *testing.T) content.Store {
		s, _ := newStore(t)
		return s
	})
}
