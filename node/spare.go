package node

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	shimbundle "berth.dev/berth/shim/bundle"
	"berth.dev/berth/shim/client"
)

// spareShim is one berth-shim started ahead of the next task, in a
// directory of its own under <State>/.spare. A task create renames that
// directory to its bundle (the shim's socket, pid file and working
// directory go with it) instead of starting a shim on its critical path,
// and another spare is started in the background. A spare is like any
// shim with no task: it survives berthd, and the next berthd stops it
// (cleanSpares). It costs one idle shim's memory.
type spareShim struct {
	mu       sync.Mutex
	dir      string // a serving spare, "" when none
	starting bool
	closed   bool
}

func (n *Node) spareRoot() string { return filepath.Join(n.opts.Tasks.State, ".spare") }

// takeSpare hands out the spare's directory ("" when there is none yet)
// and starts the next one.
func (n *Node) takeSpare() string {
	s := &n.spare
	s.mu.Lock()
	dir := s.dir
	s.dir = ""
	s.mu.Unlock()
	n.refillSpare()
	return dir
}

// refillSpare starts a spare in the background unless one serves or is
// starting.
func (n *Node) refillSpare() {
	s := &n.spare
	s.mu.Lock()
	if s.dir != "" || s.starting || s.closed {
		s.mu.Unlock()
		return
	}
	s.starting = true
	s.mu.Unlock()
	n.background.Add(1)
	go func() {
		defer n.background.Done()
		dir, err := n.startSpare()
		s.mu.Lock()
		s.starting = false
		keep := err == nil && !s.closed
		if keep {
			s.dir = dir
		}
		s.mu.Unlock()
		switch {
		case err != nil:
			n.log.Debug("start a spare shim", "err", err)
		case !keep:
			n.stopSpare(dir)
		}
	}()
}

func (n *Node) startSpare() (string, error) {
	root := n.spareRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(root, "shim-")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.Start(ctx, client.Opts{ShimBinary: n.opts.Tasks.ShimBinary, ID: "spare", Bundle: dir, Spare: true})
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	cl.Close()
	return dir, nil
}

// stopSpare stops the spare shim serving dir, if any, and removes dir.
func (n *Node) stopSpare(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cl, err := client.Connect(ctx, dir); err == nil {
		_, _ = cl.Shutdown(ctx, &shimapi.ShutdownRequest{Id: "spare", Now: true})
		cl.Close()
	} else if pid := sparePid(dir); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL) // alive, not answering
	}
	_ = os.RemoveAll(dir)
}

// sparePid is the pid in dir's pid file when it is a live spare shim's.
func sparePid(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, shimbundle.PidName))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cmd), "\x00-spare") {
		return 0
	}
	return pid
}

// cleanSpares stops, in the background, what an earlier berthd left under
// .spare: the directories are listed now, before this berthd can start a
// spare of its own there (its first task create comes after recovery).
func (n *Node) cleanSpares() {
	entries, _ := os.ReadDir(n.spareRoot())
	var left []string
	for _, e := range entries {
		if e.IsDir() {
			left = append(left, filepath.Join(n.spareRoot(), e.Name()))
		}
	}
	if len(left) == 0 {
		return
	}
	// Off the start's path: until then a leftover is one idle process more.
	n.background.Add(1)
	go func() {
		defer n.background.Done()
		for _, dir := range left {
			n.stopSpare(dir)
		}
	}()
}

// closeSpare stops the serving spare and keeps new ones from starting.
// Called once background work is done.
func (n *Node) closeSpare() {
	s := &n.spare
	s.mu.Lock()
	s.closed = true
	dir := s.dir
	s.dir = ""
	s.mu.Unlock()
	if dir != "" {
		n.stopSpare(dir)
	}
}

// adoptSpare moves a spare shim to bundle (which must not exist yet) and
// connects to it; nil when there is no spare or the move failed (what the
// failure left is stopped and removed).
func (n *Node) adoptSpare(ctx context.Context, bundle string) *client.Client {
	dir := n.takeSpare()
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(bundle), 0o700); err != nil {
		n.stopSpare(dir)
		return nil
	}
	cl, err := client.Adopt(ctx, dir, bundle)
	if err == nil {
		return cl
	}
	n.log.Warn("adopt a spare shim", "bundle", bundle, "err", err)
	if _, serr := os.Stat(bundle); serr == nil {
		n.stopSpare(bundle)
	} else {
		n.stopSpare(dir)
	}
	return nil
}
