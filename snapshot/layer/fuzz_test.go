package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"
)

// FuzzApply feeds arbitrary layer bytes to Apply, overlay mode and not:
// it must never panic, and nothing may appear outside the root.
func FuzzApply(f *testing.F) {
	f.Add(buildTar(f, devices(), map[string]string{"after": "x"}))
	f.Add(buildTar(f, []*tar.Header{symlink("l", "/"), reg("l/x"), hardlink("h", "../x"), reg("d/.wh..wh..opq"), reg("d/.wh.y")}, nil))
	f.Add(sparseTar(f, "s", 1<<20, []fragment{{0, "a"}, {4096, "b"}}))
	f.Fuzz(func(t *testing.T, layer []byte) {
		for _, overlay := range []bool{false, true} {
			s := newSandbox(t)
			_, _ = Apply(context.Background(), s.root, bytes.NewReader(layer), Options{
				NoSync: true, OverlayWhiteouts: overlay,
				Limits: Limits{MaxEntries: 1000, MaxSize: 64 << 20},
			})
			s.checkOutside(t)
		}
	})
}
