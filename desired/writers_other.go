//go:build !linux

package desired

// Without inotify's close-after-write, the settle time decides alone.
type writeState int

const (
	writeUnknown writeState = iota
	writeOpen
	writeDone
)

type writers struct{ wake chan struct{} }

func newWriters() *writers                              { return nil }
func (w *writers) watch(dir string, swapped bool) error { return nil }
func (w *writers) of(name string) writeState            { return writeUnknown }
func (w *writers) lost()                                {}
func (w *writers) close()                               {}
