package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Entry is one record of a log.
type Entry struct {
	Time    time.Time
	Stream  string // Stdout or Stderr
	Partial bool   // the line goes on in the next entry
	Text    []byte // without the newline; valid only during the callback
}

// ParseEntry parses one record (without its newline).
func ParseEntry(line []byte) (Entry, error) {
	var e Entry
	f := bytes.SplitN(line, []byte{' '}, 4)
	if len(f) < 3 {
		return e, fmt.Errorf("log record %.40q: too few fields", line)
	}
	t, err := time.Parse(time.RFC3339Nano, string(f[0]))
	if err != nil {
		return e, fmt.Errorf("log record time: %w", err)
	}
	e.Time, e.Stream, e.Partial = t, string(f[1]), string(f[2]) == "P"
	if len(f) == 4 {
		e.Text = f[3]
	}
	return e, nil
}

// ReadOptions select what Read delivers.
type ReadOptions struct {
	// Tail is how many of the last records to deliver; < 0 means all.
	Tail int
	// Follow keeps reading new records until ctx is done.
	Follow bool
	// Poll is how often a follower looks for new data (default 200ms).
	Poll time.Duration
	// Since and Until, when not zero, keep only records written at or
	// after Since and before Until; Tail counts among those. A follower
	// stops at the first record at or after Until.
	Since, Until time.Time
}

// errUntil ends a read at the first record past ReadOptions.Until.
var errUntil = errors.New("past until")

// inWindow reports whether a record of time t is inside the window, and
// whether the window has ended (t at or after Until).
func (o ReadOptions) inWindow(t time.Time) (in, ended bool) {
	if !o.Until.IsZero() && !t.Before(o.Until) {
		return false, true
	}
	return o.Since.IsZero() || !t.Before(o.Since), false
}

// windowed reports whether Since or Until select records by time.
func (o ReadOptions) windowed() bool { return !o.Since.IsZero() || !o.Until.IsZero() }

// Files lists the files of the log at path that exist, oldest first.
func Files(path string) []string {
	var out []string
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		out = append([]string{p}, out...)
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	return out
}

// Read delivers the records of the log at path to fn, oldest first, the
// rotated files included. A record that does not parse is skipped. With
// Follow it then waits for new records, across rotations, until ctx is
// done, and returns ctx's error; otherwise it returns nil at the end.
func Read(ctx context.Context, path string, opts ReadOptions, fn func(Entry) error) error {
	files := Files(path)
	skip := 0
	if opts.Tail >= 0 {
		total := 0
		for _, f := range files {
			n, err := countRecords(f, opts)
			if err != nil {
				return err
			}
			total += n
		}
		skip = max(total-opts.Tail, 0)
	}
	emit := func(line []byte) error {
		e, err := ParseEntry(line)
		if err != nil {
			return nil
		}
		in, ended := opts.inWindow(e.Time)
		if ended {
			return errUntil
		}
		if !in {
			return nil
		}
		if skip > 0 {
			skip--
			return nil
		}
		return fn(e)
	}
	// The current file is read last and, with Follow, kept open.
	for _, name := range files {
		if name == path {
			break
		}
		f, err := os.Open(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // rotated away meanwhile; its records are in a newer file
			}
			return err
		}
		_, err = readLines(f, nil, emit)
		f.Close()
		if errors.Is(err, errUntil) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if err := follow(ctx, path, opts, emit); !errors.Is(err, errUntil) {
		return err
	}
	return nil
}

func follow(ctx context.Context, path string, opts ReadOptions, emit func([]byte) error) error {
	poll := opts.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	var f *os.File
	var rest []byte
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if f != nil {
			var err error
			if rest, err = readLines(f, rest, emit); err != nil {
				return err
			}
		}
		if !opts.Follow {
			return nil
		}
		// Rotated: the name now points to a new file. What was written to
		// the old one before the rename has been read above, so switch.
		if f != nil {
			if st, err := os.Stat(path); err == nil {
				if cur, err := f.Stat(); err == nil && !os.SameFile(st, cur) {
					if rest, err = readLines(f, rest, emit); err != nil {
						return err
					}
					f.Close()
					f, rest = nil, nil
					continue
				}
			}
		}
		// Nothing written from now on can be before Until.
		if !opts.Until.IsZero() && !time.Now().Before(opts.Until) {
			return errUntil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// readLines emits every whole line from r, prefixed by rest, and returns
// the unterminated tail for the next call.
func readLines(r io.Reader, rest []byte, emit func([]byte) error) ([]byte, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			rest = append(rest, line...)
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return append(rest, line...), nil
			}
			return rest, err
		}
		if len(rest) > 0 {
			rest = append(rest, line...)
			line = rest
		}
		if err := emit(line[:len(line)-1]); err != nil {
			return nil, err
		}
		rest = rest[:0]
	}
}

// countRecords counts the records of a file that Read would deliver: every
// line, or, when opts select by time, the parsable ones inside the window.
func countRecords(name string, opts ReadOptions) (int, error) {
	if !opts.windowed() {
		return countLines(name)
	}
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	defer f.Close()
	n := 0
	_, err = readLines(f, nil, func(line []byte) error {
		if e, err := ParseEntry(line); err == nil {
			if in, _ := opts.inWindow(e.Time); in {
				n++
			}
		}
		return nil
	})
	return n, err
}

func countLines(name string) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	defer f.Close()
	n := 0
	buf := make([]byte, 32*1024)
	for {
		c, err := f.Read(buf)
		n += bytes.Count(buf[:c], []byte{'\n'})
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
