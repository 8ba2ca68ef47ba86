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
}

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
			n, err := countLines(f)
			if err != nil {
				return err
			}
			total += n
		}
		skip = max(total-opts.Tail, 0)
	}
	emit := func(line []byte) error {
		if skip > 0 {
			skip--
			return nil
		}
		e, err := ParseEntry(line)
		if err != nil {
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
		if err != nil {
			return err
		}
	}
	return follow(ctx, path, opts, emit)
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
