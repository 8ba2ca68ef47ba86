package shim

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"golang.org/x/sys/unix"
)

// trimDelay is how long a task runs before its shim lets go of its
// start-up pages. A task that exits sooner (berth run --rm of a short
// command) would otherwise have its shim fault the exit, log and reply
// code back in from disk on its critical path: measured, 20–35 ms between
// the exit and berthd learning of it on a busy disk.
const trimDelay = time.Second

// trimLater drops the shim's cold pages once the task has run trimDelay,
// unless it has exited by then. From there on the shim mostly waits.
func (s *Service) trimLater() {
	time.AfterFunc(trimDelay, func() {
		s.mu.Lock()
		running := s.init != nil && s.init.status == shimapi.Status_RUNNING
		s.mu.Unlock()
		if running {
			dropColdText()
		}
	})
}

// dropColdText asks the kernel to reclaim the pages of the shim's own
// read-only mappings (code and read-only data). Start-up touches most of
// the binary (flag parsing, protobuf registration, runtime init); a serving
// shim needs a fraction of it, which faults back in on use. RSS then shows
// the working set rather than everything read-ahead at start.
func dropColdText() {
	// The heap start-up grew is garbage now; hand its pages back too.
	debug.FreeOSMemory()
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// Fault back single pages, not read-ahead windows.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_RANDOM)
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
		// PAGEOUT leaves pages other shims map too; unmap those from this
		// process (they stay in the page cache for the others).
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}
