package harness

import (
	"berth.dev/berth/snapshot"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What a test leaves behind when berthd is stopped or killed: runc
// containers, berth-shim processes (they outlive berthd by design) and
// mounts. Each is found by the test's own root and state directories, which
// no other test shares, so only what this test started is touched.

// under reports whether path is dir or inside it.
func under(path string, dirs []string) bool {
	for _, d := range dirs {
		if d != "" && (path == d || strings.HasPrefix(path, d+"/")) {
			return true
		}
	}
	return false
}

// realDirs resolves symlinks in dirs, since /proc reports resolved paths.
func realDirs(dirs []string) []string {
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			d = r
		}
		out = append(out, filepath.Clean(d))
	}
	return out
}

// runcState is the part of runc's state.json this cleanup needs.
type runcState struct {
	ID        string `json:"id"`
	InitPID   int    `json:"init_process_pid"`
	InitStart uint64 `json:"init_process_start"`
}

// removeContainers finds runc state directories (ROOT/ID/state.json) within
// a few levels of dirs and force-deletes those containers with runc, or
// kills their init process if runc is unavailable or fails.
func removeContainers(dirs []string) []error {
	var errs []error
	mounts := map[string]bool{}
	for _, m := range mountPoints() {
		mounts[m] = true
	}
	for _, dir := range realDirs(dirs) {
		_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if e.IsDir() {
				// Container root filesystems can be large; runc state is shallow.
				if path != dir && (mounts[path] || strings.Count(path[len(dir):], "/") > 5) {
					return filepath.SkipDir
				}
				return nil
			}
			if e.Name() != "state.json" {
				return nil
			}
			b, err := os.ReadFile(path)
			var st runcState
			if err != nil || json.Unmarshal(b, &st) != nil || st.ID == "" || st.InitPID == 0 {
				return nil
			}
			if err := removeContainer(filepath.Dir(filepath.Dir(path)), st); err != nil {
				errs = append(errs, err)
			}
			return nil
		})
	}
	return errs
}

func removeContainer(runcRoot string, st runcState) error {
	if runc, err := exec.LookPath("runc"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if exec.CommandContext(ctx, runc, "--root", runcRoot, "delete", "--force", st.ID).Run() == nil {
			return nil
		}
	}
	// Only the process runc recorded, checked by its start time so a reused
	// PID is never hit.
	if procStart(st.InitPID) != st.InitStart {
		return nil
	}
	if err := syscall.Kill(st.InitPID, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill container %s init %d: %w", st.ID, st.InitPID, err)
	}
	return nil
}

// procStart is field 22 of /proc/PID/stat (start time in clock ticks), 0 if
// the process is gone.
func procStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields are counted after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// procGone reports whether pid has exited (or is a zombie awaiting its
// parent, which for a shim is init).
func procGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// shimPIDs lists berth-shim processes whose command line names a path
// under dirs or whose working directory is under dirs.
func shimPIDs(dirs []string) []int {
	dirs = realDirs(dirs)
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if !strings.Contains(filepath.Base(args[0]), "berth-shim") && !strings.Contains(filepath.Base(exe), "berth-shim") {
			continue
		}
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		mine := under(cwd, dirs)
		for _, a := range args[1:] {
			// Flags may be "--state=/tmp/…" as well as "--state /tmp/…".
			if i := strings.IndexByte(a, '='); i >= 0 && strings.HasPrefix(a, "-") {
				a = a[i+1:]
			}
			mine = mine || under(filepath.Clean(a), dirs)
		}
		if mine {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killShims SIGKILLs the shims of shimPIDs and waits until they are gone.
func killShims(dirs []string) []error {
	var errs []error
	for _, pid := range shimPIDs(dirs) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			errs = append(errs, fmt.Errorf("kill berth-shim %d: %w", pid, err))
			continue
		}
		if _, ok := poll(5*time.Second, func() (bool, string) { return procGone(pid), "" }); !ok {
			errs = append(errs, fmt.Errorf("berth-shim %d still alive 5s after SIGKILL", pid))
		}
	}
	return errs
}

// mountPoints lists the mount points in mount order (snapshot.MountPoints).
func mountPoints() []string {
	mps, _ := snapshot.MountPoints()
	return mps
}

// MountsUnder lists the mount points at or below any of dirs, topmost
// (most recently mounted) first. Tests use it to assert that nothing is
// left mounted.
func MountsUnder(dirs ...string) []string {
	dirs = realDirs(dirs)
	var out []string
	for _, m := range mountPoints() {
		if under(m, dirs) {
			out = append(out, m)
		}
	}
	slices.Reverse(out)
	return out
}

// unmountUnder unmounts everything at or below dirs, topmost first, lazily
// (MNT_DETACH) when a plain unmount is refused, in rounds because stacked
// mounts appear again once the upper one is gone.
func unmountUnder(dirs []string) []error {
	for round := 0; round < 10; round++ {
		ms := MountsUnder(dirs...)
		if len(ms) == 0 {
			return nil
		}
		for _, m := range ms {
			if err := syscall.Unmount(m, 0); err != nil {
				_ = syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
	}
	var errs []error
	for _, m := range MountsUnder(dirs...) {
		errs = append(errs, fmt.Errorf("%s is still mounted", m))
	}
	return errs
}
