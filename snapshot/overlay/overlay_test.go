package overlay

import (
	"testing"

	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/testsuite"
)

func TestOverlay(t *testing.T) {
	testsuite.Run(t, func(t *testing.T, root string) (snapshot.Snapshotter, error) {
		return New(root)
	})
}
