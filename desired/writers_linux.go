package desired

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeState is what inotify says of a file's writer.
type writeState int

const (
	// writeUnknown: no event seen (a file that predates the watch, events
	// lost, or no inotify): only a quiet settle time says it is whole.
	writeUnknown writeState = iota
	// writeOpen: created or modified, and not closed since.
	writeOpen
	// writeDone: closed after writing (IN_CLOSE_WRITE), or renamed into
	// place: whole.
	writeDone
)

// writers tracks, from its own inotify instance on the resolved
// directory, whether each file's writer is done. fsnotify (v1.10) keeps
// IN_CLOSE_WRITE unexported, and a second instance keeps the modify and
// close of one file in the order they happened, which two channels would
// not.
type writers struct {
	f    *os.File
	wake chan struct{} // a file became whole: read soon

	mu    sync.Mutex
	wd    int
	state map[string]writeState // by base name
	fresh writeState            // what an unseen name is
}

// newWriters starts the tracker, or returns nil when inotify is not there
// (the settle time then decides alone).
func newWriters() *writers {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	w := &writers{f: os.NewFile(uintptr(fd), "inotify"), wake: make(chan struct{}, 1), wd: -1, state: map[string]writeState{}}
	go w.read()
	return w
}

// watch moves the tracker to dir. swapped says dir replaced the previous
// one at once (a symlink swap): its files were complete before it became
// visible, so a name not seen since counts as done.
func (w *writers) watch(dir string, swapped bool) error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wd >= 0 {
		_, _ = unix.InotifyRmWatch(int(w.f.Fd()), uint32(w.wd))
	}
	w.state = map[string]writeState{}
	w.fresh = writeUnknown
	if swapped {
		w.fresh = writeDone
	}
	wd, err := unix.InotifyAddWatch(int(w.f.Fd()), dir,
		unix.IN_CREATE|unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_ONLYDIR)
	if err != nil {
		w.wd = -1
		return err
	}
	w.wd = wd
	return nil
}

// of reports the state of name.
func (w *writers) of(name string) writeState {
	if w == nil {
		return writeUnknown
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.state[name]; ok {
		return s
	}
	return w.fresh
}

// lost forgets everything: events were dropped (IN_Q_OVERFLOW).
func (w *writers) lost() {
	w.mu.Lock()
	w.state, w.fresh = map[string]writeState{}, writeUnknown
	w.mu.Unlock()
}

func (w *writers) close() {
	if w != nil {
		w.f.Close()
	}
}

func (w *writers) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		whole := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				w.lost()
				continue
			}
			name := string(bytes.TrimRight(nameBytes, "\x00"))
			whole = w.note(int(ev.Wd), name, ev.Mask) || whole
		}
		if whole {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

// note records one event, and reports whether it made a file whole.
func (w *writers) note(wd int, name string, mask uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wd != w.wd || name == "" {
		return false // an event of a directory no longer watched
	}
	switch {
	case mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
		delete(w.state, name)
	case mask&unix.IN_MOVED_TO != 0, mask&unix.IN_CLOSE_WRITE != 0:
		w.state[name] = writeDone
		return true
	case mask&(unix.IN_CREATE|unix.IN_MODIFY) != 0:
		// IN_CREATE of a symlink or a hard link has no writer to wait
		// for; the settle time covers those.
		w.state[name] = writeOpen
	}
	return false
}
