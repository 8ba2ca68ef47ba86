package logs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// Writer appends records to a size-rotated log. It is safe for concurrent
// use by the stdout and stderr copiers of one container.
type Writer struct {
	mu      sync.Mutex
	path    string
	maxSize int64 // < 0: never rotate; follow a rename of path instead
	// checked is when path was last compared with the open file (external
	// rotation only).
	checked  time.Time
	maxFiles int // files kept, the current one included; >= 1
	f        *os.File
	size     int64
	// dirty says the open file has records not yet fsynced: a log that
	// got nothing since it was opened (a container that printed nothing)
	// costs no fsync on close, on the path of a task's delete.
	dirty bool
	buf   []byte
	now   func() time.Time
}

// Defaults applied by NewWriter to zero values.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 3
)

// NewWriter opens (or continues) the log at path. maxSize == 0 and
// maxFiles <= 0 take the defaults. A negative maxSize leaves rotation to
// someone else (the kubelet renames the file and asks for a new one): the
// writer never rotates, and at most once a second it checks that path
// still names its file, reopening path when it does not.
func NewWriter(path string, maxSize int64, maxFiles int) (*Writer, error) {
	if maxSize == 0 {
		maxSize = DefaultMaxSize
	}
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	w := &Writer{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", w.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log %s: %w", w.path, err)
	}
	w.f, w.size, w.dirty = f, st.Size(), false
	return nil
}

// WriteRecord appends one record. text must not contain a newline.
func (w *Writer) WriteRecord(stream string, partial bool, text []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return os.ErrClosed
	}
	tag := "F"
	if partial {
		tag = "P"
	}
	b := w.buf[:0]
	b = w.now().UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z07:00")
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ' ')
	b = append(b, text...)
	b = append(b, '\n')
	w.buf = b
	if w.maxSize < 0 {
		if err := w.follow(); err != nil {
			return err
		}
	} else if w.size > 0 && w.size+int64(len(b)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	w.dirty = w.dirty || n > 0
	if cap(w.buf) > 4*MaxLine {
		w.buf = nil // do not keep a huge buffer for the container's lifetime
	}
	return err
}

// follow reopens path when it no longer names the open file (renamed or
// removed by whoever rotates it), checking at most once a second.
func (w *Writer) follow() error {
	now := time.Now()
	if now.Sub(w.checked) < time.Second {
		return nil
	}
	w.checked = now
	if names(w.path, w.f) {
		return nil
	}
	w.sync()
	_ = w.f.Close()
	w.f = nil
	return w.open()
}

// names reports whether path names the file f has open.
func names(path string, f *os.File) bool {
	a, err := os.Stat(path)
	if err != nil {
		return false
	}
	b, err := f.Stat()
	return err == nil && os.SameFile(a, b)
}

// rotate shifts path.i to path.i+1, dropping the oldest, and starts a new
// path. The old file is fsynced first so a power cut loses at most the
// newest file's tail, never a rotated file.
func (w *Writer) rotate() error {
	w.sync()
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close log %s: %w", w.path, err)
	}
	w.f = nil
	if w.maxFiles == 1 {
		if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", w.path, err)
		}
		return w.open()
	}
	for i := w.maxFiles - 1; i >= 1; i-- {
		from := w.path
		if i > 1 {
			from = w.path + "." + strconv.Itoa(i-1)
		}
		if err := os.Rename(from, w.path+"."+strconv.Itoa(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", from, err)
		}
	}
	return w.open()
}

// Close flushes the current file to disk and closes it.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	w.sync()
	err := w.f.Close()
	w.f = nil
	return err
}

// sync fsyncs the open file if it got records since it was opened or last
// synced. mu held.
func (w *Writer) sync() {
	if w.dirty {
		_ = w.f.Sync()
		w.dirty = false
	}
}

// FlushAfter is how long a line without its newline waits for the rest
// before it is written as a partial (P) record: a prompt or `echo -n`
// output reaches the log, and whoever follows it (an attach), instead of
// waiting for a newline that may never come.
const FlushAfter = 200 * time.Millisecond

// deadliner is a reader whose blocking Read can be given a deadline (a
// pipe: os.Pipe's ends are on the poller).
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// idleReader arms a read deadline of FlushAfter while the bytes it has
// returned end inside a line, and disarms it at a newline.
type idleReader struct {
	r       io.Reader
	d       deadliner
	partial bool // the last byte returned was not a newline
	armed   bool
}

func (x *idleReader) Read(p []byte) (int, error) {
	if x.partial != x.armed {
		t := time.Time{}
		if x.partial {
			t = time.Now().Add(FlushAfter)
		}
		if x.d.SetReadDeadline(t) == nil {
			x.armed = x.partial
		}
	}
	n, err := x.r.Read(p)
	if n > 0 {
		x.partial = p[n-1] != '\n'
	}
	return n, err
}

// Copy reads r line by line until EOF, writing each line as records of
// stream to w (when w is not nil) and the raw bytes to tee (when not nil).
// Carriage returns before a newline, as a terminal sends, are dropped from
// the log. A line left unfinished for FlushAfter on a pipe is written as a
// partial record, its rest later. It returns nil at EOF.
func Copy(w *Writer, stream string, r io.Reader, tee func([]byte)) error {
	var idle *idleReader
	if d, ok := r.(deadliner); ok && d.SetReadDeadline(time.Time{}) == nil {
		idle = &idleReader{r: r, d: d}
		r = idle
	}
	br := bufio.NewReaderSize(r, MaxLine)
	for {
		line, err := br.ReadSlice('\n')
		timedOut := idle != nil && errors.Is(err, os.ErrDeadlineExceeded)
		if len(line) > 0 {
			if tee != nil {
				tee(line)
			}
			if w != nil {
				full := line[len(line)-1] == '\n'
				text := line
				if full {
					text = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
				}
				// A line cut by EOF is still a whole line to the reader.
				partial := !full && (errors.Is(err, bufio.ErrBufferFull) || timedOut)
				if werr := w.WriteRecord(stream, partial, text); werr != nil && !errors.Is(werr, os.ErrClosed) {
					return werr
				}
			}
		}
		if timedOut {
			// What was pending is written: wait for more without a deadline.
			idle.partial = false
			continue
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed):
			return nil
		default:
			return err
		}
	}
}
