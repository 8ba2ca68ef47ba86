package layer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

// BenchmarkApply_Debian applies the one-layer debian test image (49 MB
// gzip, 121 MB tar) onto tmpfs (mounted here when root). The "reserve"
// case adds a free-space reserve, so the two show what its fstatfs checks
// cost (the hostile-input limits are always on in both).
func BenchmarkApply_Debian(b *testing.B) {
	layers := imageLayers(b, filepath.Join(testutil.TestImages(b, "debian"), "debian"))
	blob, err := os.ReadFile(layers[0].Path)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=2g"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	}
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"reserve", Options{FreeSpace: FreeSpace{Percent: 5}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			opts := c.opts
			opts.ExpectedDiffID = layers[0].DiffID
			b.SetBytes(int64(len(blob)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				root := filepath.Join(dir, fmt.Sprint(i))
				if err := os.Mkdir(root, 0o755); err != nil {
					b.Fatal(err)
				}
				res, err := Apply(context.Background(), root, bytesReader(blob), opts)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if res.Size < 100<<20 {
					b.Fatalf("applied %d bytes, want the whole layer", res.Size)
				}
				os.RemoveAll(root)
				b.StartTimer()
			}
		})
	}
}
