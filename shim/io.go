package shim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/shim/logs"
	"golang.org/x/sys/unix"
)

// procIO owns one process's stdio on the shim's side: the pipes (or pty
// master) the process writes to, the copiers that move its output to the
// log and to the attaching client's FIFOs, and its stdin.
type procIO struct {
	child   stdioFiles // the process's ends, closed once runc has passed them on
	stdinW  *os.File   // the shim's end of the process's stdin
	console *os.File   // pty master when the process has a terminal
	closeIn sync.Once
	copiers sync.WaitGroup
	log     *logs.Writer
	stdio   *shimapi.Stdio
}

// fifoWait is how long the container may be held up by an attached client
// that does not read its FIFO; after that the client is dropped and output
// goes on to the log only.
const fifoWait = 2 * time.Second

// newPipeIO prepares pipes for a process without a terminal. Output goes
// to log (when not nil) and to the stdout/stderr FIFOs (when named); a
// stream with neither goes to /dev/null.
func newPipeIO(stdio *shimapi.Stdio, log *logs.Writer) (*procIO, error) {
	p := &procIO{log: log, stdio: stdio}
	outs := []struct {
		stream, fifo string
		child        **os.File
	}{
		{logs.Stdout, stdio.GetStdout(), &p.child.out},
		{logs.Stderr, stdio.GetStderr(), &p.child.err},
	}
	for _, o := range outs {
		if log == nil && o.fifo == "" {
			continue
		}
		tee, err := openTee(o.fifo)
		if err != nil {
			p.close()
			return nil, err
		}
		r, w, err := os.Pipe()
		if err != nil {
			tee.close()
			p.close()
			return nil, err
		}
		*o.child = w
		p.copiers.Add(1)
		go func(stream string) {
			defer p.copiers.Done()
			defer r.Close()
			defer tee.close()
			_ = logs.Copy(log, stream, r, tee.write)
		}(o.stream)
	}
	if stdio.GetStdin() != "" {
		r, w, err := os.Pipe()
		if err != nil {
			p.close()
			return nil, err
		}
		p.child.in, p.stdinW = r, w
		go p.copyStdin(w)
	}
	return p, nil
}

// copyStdin opens the stdin FIFO, which blocks until the client opens its
// end, and copies it to dst until the client closes it.
// With stdin_open the shim opens it for writing too: the FIFO then never
// reads EOF, clients come and go, and only CloseIO ends the input.
func (p *procIO) copyStdin(dst io.Writer) {
	flag := os.O_RDONLY
	if p.stdio.GetStdinOpen() {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(p.stdio.GetStdin(), flag, 0)
	if err != nil {
		p.closeStdin()
		return
	}
	defer f.Close()
	_, _ = io.Copy(dst, f)
	p.closeStdin()
}

// attachConsole takes the pty master runc sent and starts its copiers.
func (p *procIO) attachConsole(master *os.File) error {
	p.console = master
	tee, err := openTee(p.stdio.GetStdout())
	if err != nil {
		return err
	}
	p.copiers.Add(1)
	go func() {
		defer p.copiers.Done()
		defer tee.close()
		// The master reads EIO once the last slave fd closes: that is EOF.
		_ = logs.Copy(p.log, logs.Stdout, eioReader{master}, tee.write)
	}()
	if p.stdio.GetStdin() != "" {
		p.stdinW = master
		go p.copyStdin(master)
	}
	return nil
}

type eioReader struct{ r io.Reader }

func (e eioReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if errors.Is(err, unix.EIO) {
		err = io.EOF
	}
	return n, err
}

// closeChild closes the process's ends of the pipes: after runc create or
// exec the process holds its own copies, and output ends when it exits.
func (p *procIO) closeChild() {
	for _, f := range []*os.File{p.child.in, p.child.out, p.child.err} {
		if f != nil {
			f.Close()
		}
	}
	p.child = stdioFiles{}
}

// closeStdin gives the process EOF on stdin (CloseIO). With a terminal the
// master stays open for output; the client's close is what ends input.
func (p *procIO) closeStdin() {
	p.closeIn.Do(func() {
		if p.stdinW != nil && p.stdinW != p.console {
			p.stdinW.Close()
		}
	})
}

// wait waits up to timeout for the output copiers to drain. A process that
// left a child holding its stdout must not hold up its exit for ever.
func (p *procIO) wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() { p.copiers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

func (p *procIO) close() {
	p.closeChild()
	p.closeStdin()
	if p.console != nil {
		p.console.Close()
	}
}

func (p *procIO) resize(w, h uint32) error {
	if p.console == nil {
		return fmt.Errorf("process has no terminal")
	}
	rc, err := p.console.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	err = rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(h), Col: uint16(w)})
	})
	return errors.Join(err, ierr)
}

// tee copies output to an attached client's FIFO, giving up on a client
// that stops reading instead of stalling the container.
type tee struct{ f *os.File }

func openTee(path string) (*tee, error) {
	if path == "" {
		return &tee{}, nil
	}
	// O_RDWR never blocks for a missing reader; O_NONBLOCK puts the FIFO on
	// the poller so a write can time out.
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open fifo %s: %w", path, err)
	}
	return &tee{f: f}, nil
}

func (t *tee) write(b []byte) {
	if t.f == nil {
		return
	}
	_ = t.f.SetWriteDeadline(time.Now().Add(fifoWait))
	if _, err := t.f.Write(b); err != nil {
		t.close()
	}
}

func (t *tee) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// consoleSocket receives the pty master from runc --console-socket. It
// lives in a short temporary directory: unix socket paths are limited to
// 108 bytes and a bundle path may be longer.
type consoleSocket struct {
	dir string
	l   *net.UnixListener
}

func newConsoleSocket() (*consoleSocket, error) {
	dir, err := os.MkdirTemp("", "berth-pty")
	if err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &consoleSocket{dir: dir, l: l}, nil
}

func (c *consoleSocket) path() string { return filepath.Join(c.dir, "s") }

func (c *consoleSocket) receive(timeout time.Duration) (*os.File, error) {
	_ = c.l.SetDeadline(time.Now().Add(timeout))
	conn, err := c.l.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("accept console: %w", err)
	}
	defer conn.Close()
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive console: bad control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive console: no fd: %v", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

func (c *consoleSocket) close() {
	c.l.Close()
	os.RemoveAll(c.dir)
}
