package native

import (
	"testing"

	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/testsuite"
)

func TestNative(t *testing.T) {
	testsuite.Run(t, func(t *testing.T, root string) (snapshot.Snapshotter, error) {
		return New(root)
	})
}
