package snapshot

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MountAll mounts mounts on target in order. An overlay whose options do not
// fit in mount(2)'s one page of data (a chain of ~100+ layers) is mounted
// with the new mount API, one "lowerdir+" per layer (Linux 6.8+), or, on
// older kernels, by mount(8) run in the layers' common directory with short
// relative lowerdirs. On error, what was already mounted is unmounted.
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		t := target
		if m.Target != "" {
			t = filepath.Join(target, filepath.Clean("/"+m.Target))
		}
		if err := mountOne(m, t); err != nil {
			if i > 0 {
				_ = UnmountAll(target)
			}
			return fmt.Errorf("mount %s on %s: %w", m.Type, t, err)
		}
	}
	return nil
}

// UnmountAll unmounts everything stacked on target; a busy mount is
// detached lazily (MNT_DETACH). Not mounted is not an error.
func UnmountAll(target string) error {
	for range 64 {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s (detach): %w", target, err)
			}
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts", target)
}

var flagOpts = map[string]struct {
	clear bool
	flag  uintptr
	attr  uint64
}{
	"ro":       {false, unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
	"rw":       {true, unix.MS_RDONLY, 0},
	"nosuid":   {false, unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
	"nodev":    {false, unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
	"noexec":   {false, unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
	"bind":     {false, unix.MS_BIND, 0},
	"rbind":    {false, unix.MS_BIND | unix.MS_REC, 0},
	"noatime":  {false, unix.MS_NOATIME, unix.MOUNT_ATTR_NOATIME},
	"relatime": {false, unix.MS_RELATIME, 0},
}

// parseOptions splits mount(8) options into flags, new-API attributes and
// filesystem data.
func parseOptions(opts []string) (flags uintptr, attrs uint64, data []string) {
	for _, o := range opts {
		f, ok := flagOpts[o]
		switch {
		case !ok:
			data = append(data, o)
		case f.clear:
			flags &^= f.flag
		default:
			flags |= f.flag
			attrs |= f.attr
		}
	}
	return flags, attrs, data
}

func mountOne(m Mount, target string) error {
	flags, attrs, data := parseOptions(m.Options)
	if m.Type == "bind" || flags&unix.MS_BIND != 0 {
		if err := unix.Mount(m.Source, target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return err
		}
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			// Bind mounts take flags such as ro only on a remount.
			if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|rest, ""); err != nil {
				_ = unix.Unmount(target, unix.MNT_DETACH)
				return fmt.Errorf("remount with %v: %w", m.Options, err)
			}
		}
		return nil
	}
	d := strings.Join(data, ",")
	if m.Type != "overlay" || len(d) < os.Getpagesize()-1 {
		return unix.Mount(m.Source, target, m.Type, flags, d)
	}
	err := mountFsconfig(m, attrs, data, target)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, errNoLowerdirPlus) {
		return mountRelative(m, target)
	}
	return err
}

var errNoLowerdirPlus = errors.New(`kernel lacks overlay "lowerdir+"`)

// mountFsconfig mounts an overlay through fsopen/fsconfig/fsmount, giving
// each lower directory its own "lowerdir+" parameter so no page limit applies.
func mountFsconfig(m Mount, attrs uint64, data []string, target string) error {
	fd, err := unix.Fsopen(m.Type, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.FsconfigSetString(fd, "source", m.Source); err != nil {
		return fmt.Errorf("fsconfig source: %w", err)
	}
	for _, o := range data {
		k, v, hasValue := strings.Cut(o, "=")
		switch {
		case k == "lowerdir":
			for _, dir := range strings.Split(v, ":") {
				if err := unix.FsconfigSetString(fd, "lowerdir+", dir); err != nil {
					if errors.Is(err, unix.EINVAL) {
						return fmt.Errorf("%w: %w", errNoLowerdirPlus, err)
					}
					return fmt.Errorf("fsconfig lowerdir+ %s: %w", dir, err)
				}
			}
		case hasValue:
			err = unix.FsconfigSetString(fd, k, v)
		default:
			err = unix.FsconfigSetFlag(fd, k)
		}
		if err != nil {
			return fmt.Errorf("fsconfig %s: %w", o, err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("fsconfig create: %w", err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, int(attrs))
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// mountRelative runs mount(8) in the directories' common parent with
// relative paths, the way to fit long chains into one page on old kernels.
func mountRelative(m Mount, target string) error {
	abs, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	dir, opts := relativeOptions(m.Options)
	cmd := exec.Command("mount", "-t", m.Type, m.Source, "-o", strings.Join(opts, ","), abs)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mount in %s: %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// relativeOptions rewrites lowerdir, upperdir and workdir relative to their
// common parent directory, which it returns.
func relativeOptions(opts []string) (string, []string) {
	var paths []string
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			paths = append(paths, strings.Split(v, ":")...)
		case "upperdir", "workdir":
			paths = append(paths, v)
		}
	}
	if len(paths) == 0 {
		return "/", opts
	}
	common := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	rel := func(p string) string {
		if common == "/" {
			return strings.TrimPrefix(p, "/")
		}
		return strings.TrimPrefix(p, common+"/")
	}
	out := make([]string, 0, len(opts))
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			ds := strings.Split(v, ":")
			for i := range ds {
				ds[i] = rel(ds[i])
			}
			o = k + "=" + strings.Join(ds, ":")
		case "upperdir", "workdir":
			o = k + "=" + rel(v)
		}
		out = append(out, o)
	}
	return common, out
}

// ShellCommand returns sh(1) commands that mount mounts on target, as
// `ctr snapshots mounts` prints them, so `… | sh` mounts the snapshot. A
// long overlay chain is printed as `cd DIR && mount … lowerdir=1/fs:2/fs…`
// in a subshell.
func ShellCommand(mounts []Mount, target string) string {
	var b strings.Builder
	for _, m := range mounts {
		t := target
		if m.Target != "" {
			t = filepath.Join(target, filepath.Clean("/"+m.Target))
		}
		opts := m.Options
		typ := m.Type
		if typ == "bind" {
			typ = "none"
			if !hasOpt(opts, "bind") && !hasOpt(opts, "rbind") {
				opts = append([]string{"bind"}, opts...)
			}
		}
		line := fmt.Sprintf("mount -t %s %s %s", shQuote(typ), shQuote(m.Source), shQuote(t))
		if len(opts) > 0 {
			line += " -o " + shQuote(strings.Join(opts, ","))
		}
		if typ == "overlay" && len(strings.Join(opts, ",")) >= os.Getpagesize()-1 {
			dir, rel := relativeOptions(opts)
			if abs, err := filepath.Abs(t); err == nil {
				t = abs
			}
			line = fmt.Sprintf("(cd %s && mount -t overlay %s %s -o %s)", shQuote(dir), shQuote(m.Source), shQuote(t), shQuote(strings.Join(rel, ",")))
		}
		b.WriteString(line)
		b.WriteString("\n")
	}
	return b.String()
}

func hasOpt(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

func shQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
