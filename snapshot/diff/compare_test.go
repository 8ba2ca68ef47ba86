package diff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/layer"
	"berth.dev/berth/snapshot/native"
	"berth.dev/berth/snapshot/overlay"
)

// snapshotters are the snapshotters the round trip runs on; btrfs adds
// itself where a btrfs filesystem can be made (btrfs_test.go).
var snapshotters = map[string]func(t *testing.T) snapshot.Snapshotter{
	"overlayfs": func(t *testing.T) snapshot.Snapshotter {
		sn, err := overlay.New(t.TempDir())
		return opened(t, sn, err)
	},
	"native": func(t *testing.T) snapshot.Snapshotter {
		sn, err := native.New(t.TempDir())
		return opened(t, sn, err)
	},
}

func opened(t *testing.T, sn snapshot.Snapshotter, err error) snapshot.Snapshotter {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	return sn
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var fixed = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// build helpers: each changes the tree under dir.
func write(p, data string, mode os.FileMode) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), []byte(data), mode))
		must(t, os.Chmod(filepath.Join(dir, p), mode))
	}
}

func mkdir(p string, mode os.FileMode) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		must(t, os.MkdirAll(filepath.Join(dir, p), mode))
		must(t, os.Chmod(filepath.Join(dir, p), mode))
	}
}

func rm(p string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) { must(t, os.RemoveAll(filepath.Join(dir, p))) }
}

func chmod(p string, mode os.FileMode) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) { must(t, os.Chmod(filepath.Join(dir, p), mode)) }
}

func chown(p string, uid, gid int) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) { must(t, os.Lchown(filepath.Join(dir, p), uid, gid)) }
}

func link(old, p string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) { must(t, os.Link(filepath.Join(dir, old), filepath.Join(dir, p))) }
}

func symlink(target, p string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) { must(t, os.Symlink(target, filepath.Join(dir, p))) }
}

func mknod(p string, mode uint32, major, minor uint32) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		must(t, unix.Mknod(filepath.Join(dir, p), mode, int(unix.Mkdev(major, minor))))
	}
}

func setxattr(p, name, value string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) { must(t, unix.Lsetxattr(filepath.Join(dir, p), name, []byte(value), 0)) }
}

func steps(fns ...func(t *testing.T, dir string)) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		for _, fn := range fns {
			fn(t, dir)
		}
	}
}

// baseTree is the lower layer every case changes.
var baseTree = steps(
	write("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644),
	write("etc/motd", "hello\n", 0o644),
	write("bin/tool", "#!/bin/sh\necho tool\n", 0o755),
	mkdir("var/cache/app", 0o755),
	write("var/cache/app/a", "a", 0o644),
	write("var/cache/app/b", "b", 0o644),
	mkdir("srv/data", 0o750),
	write("srv/data/keep", "keep", 0o600),
	symlink("../etc/motd", "bin/motd"),
	write("big", strings.Repeat("x", 300<<10), 0o644),
)

var cases = []struct {
	name   string
	change func(t *testing.T, dir string)
}{
	{"add file", write("etc/new", "new file\n", 0o640)},
	{"modify file", write("etc/motd", "changed\n", 0o644)},
	{"delete file", rm("etc/motd")},
	{"delete dir", rm("var/cache")},
	{"opaque dir", steps(rm("var/cache/app"), mkdir("var/cache/app", 0o700), write("var/cache/app/c", "c", 0o644))},
	{"chmod", chmod("bin/tool", 0o700)},
	{"chown", chown("etc/passwd", 1000, 1001)},
	{"setuid and sticky", steps(chmod("bin/tool", 0o4755), mkdir("tmp", 0o1777))},
	{"hard link to lower file", link("bin/tool", "bin/tool2")},
	{"hard links in layer", steps(write("opt/x", "x", 0o644), link("opt/x", "opt/y"), link("opt/x", "opt/z"))},
	{"symlink", steps(symlink("/etc/passwd", "etc/pw"), rm("bin/motd"), symlink("/nowhere", "bin/motd"))},
	{"devices and fifo", steps(mkdir("dev", 0o755), mknod("dev/null", unix.S_IFCHR|0o666, 1, 3), mknod("dev/loop9", unix.S_IFBLK|0o660, 7, 9), mknod("fifo", unix.S_IFIFO|0o644, 0, 0))},
	{"xattrs", steps(setxattr("etc/passwd", "user.note", "v1"), setxattr("srv/data", "user.dir", "d"))},
	{"file replaces dir", steps(rm("srv/data"), write("srv/data", "now a file", 0o644))},
	{"dir replaces file", steps(rm("etc/motd"), mkdir("etc/motd", 0o755), write("etc/motd/inner", "i", 0o644))},
	{"deep new tree", steps(mkdir("a/b/c/d", 0o755), write("a/b/c/d/e", "e", 0o644))},
	{"everything", steps(write("etc/new", "n", 0o644), rm("etc/motd"), chmod("bin/tool", 0o711), link("bin/tool", "bin/hl"), symlink("tool", "bin/sl"), rm("var/cache/app/a"))},
	{"rename dir", renameDir("var/cache/app", "var/cache/moved")},
	{"no change", func(*testing.T, string) {}},
}

// renameDir renames a directory of the lower layer: overlayfs does it with
// a redirect xattr when redirect_dir is on (then Compare walks), and
// refuses it with EXDEV otherwise, as mv then copies; so copy then.
func renameDir(from, to string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to))
		if errors.Is(err, unix.EXDEV) {
			mkdir(to, 0o755)(t, dir)
			write(to+"/a", "a", 0o644)(t, dir)
			write(to+"/b", "b", 0o644)(t, dir)
			rm(from)(t, dir)
			return
		}
		must(t, err)
	}
}

// mounted runs fn with mounts mounted on a temporary directory.
func mounted(t *testing.T, mounts []snapshot.Mount, fn func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	must(t, snapshot.MountAll(mounts, dir))
	defer func() { must(t, snapshot.UnmountAll(dir)) }()
	fn(dir)
}

// tree describes every entry under dir: what a layer must reproduce.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" size=%d sha=%s mtime=%d", st.Size, hex.EncodeToString(sum[:8]), st.Mtim.Nano())
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			desc += fmt.Sprintf(" rdev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		xs, err := xattrs(p)
		if err != nil {
			return err
		}
		var names []string
		for k, v := range xs {
			names = append(names, k+"="+v)
		}
		sort.Strings(names)
		if len(names) > 0 {
			desc += " xattrs=" + strings.Join(names, ",")
		}
		out[rel] = desc
		return nil
	})
	must(t, err)
	// Hard links: the same inode under several names, whatever its number.
	for _, names := range inodes {
		sort.Strings(names)
		for _, n := range names {
			out[n] += " links=" + strings.Join(names, ",")
		}
	}
	return out
}

// TestRoundTrip: Compare(base, base+change) applied onto base gives
// base+change, on every snapshotter, by the fast path and by walking.
func TestRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	for snName, newSn := range snapshotters {
		for _, walk := range []bool{false, true} {
			for _, tc := range cases {
				name := fmt.Sprintf("%s/%s/walk=%v", snName, tc.name, walk)
				t.Run(name, func(t *testing.T) {
					sn := newSn(t)
					roundTrip(t, ctx, sn, tc.change, Options{NoFastPath: walk, Compression: Gzip}, snName == "overlayfs" && !walk)
				})
			}
		}
	}
}

func roundTrip(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, change func(*testing.T, string), opts Options, wantFast bool) {
	t.Helper()
	m, err := sn.Prepare(ctx, "base-active", "")
	must(t, err)
	mounted(t, m, func(dir string) { baseTree(t, dir) })
	must(t, sn.Commit(ctx, "base", "base-active"))

	upper, err := sn.Prepare(ctx, "work", "base")
	must(t, err)
	var want map[string]string
	mounted(t, upper, func(dir string) {
		change(t, dir)
		want = tree(t, dir)
	})
	lower, err := sn.View(ctx, "base-view", "base")
	must(t, err)

	var tarball bytes.Buffer
	res, err := Compare(ctx, lower, upper, &tarball, opts)
	must(t, err)
	if res.FastPath != wantFast {
		t.Errorf("FastPath = %v, want %v", res.FastPath, wantFast)
	}
	if res.Size != int64(tarball.Len()) || res.Digest.Validate() != nil || res.DiffID.Validate() != nil {
		t.Fatalf("bad result %+v for %d bytes", res, tarball.Len())
	}

	check, err := sn.Prepare(ctx, "check", "base")
	must(t, err)
	ar, err := Apply(ctx, check, bytes.NewReader(tarball.Bytes()), layer.Options{ExpectedDiffID: res.DiffID, AllowDevices: true, NoSync: true})
	must(t, err)
	if ar.DroppedXattrs != 0 || ar.SkippedDevices != 0 {
		t.Errorf("apply dropped %d xattrs, skipped %d devices", ar.DroppedXattrs, ar.SkippedDevices)
	}
	mounted(t, check, func(dir string) {
		if diff := cmp.Diff(want, tree(t, dir)); diff != "" {
			t.Errorf("applied tree differs from the changed one (-want +got):\n%s\nlayer:\n%s", diff, listLayer(t, tarball.Bytes()))
		}
	})
}

// TestReproducible: the same changes made twice at different times give
// the same digest once mtimes are clamped; gzip and zstd both apply.
func TestReproducible(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	for snName, newSn := range snapshotters {
		for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
			t.Run(snName+"/"+string(c), func(t *testing.T) {
				epoch := fixed
				opts := Options{Compression: c, SourceDateEpoch: &epoch}
				var digests []string
				for i := range 2 {
					sn := newSn(t)
					m, err := sn.Prepare(ctx, "base-active", "")
					must(t, err)
					mounted(t, m, func(dir string) { baseTree(t, dir) })
					must(t, sn.Commit(ctx, "base", "base-active"))
					upper, err := sn.Prepare(ctx, "work", "base")
					must(t, err)
					mounted(t, upper, func(dir string) {
						cases[len(cases)-2].change(t, dir) // "everything"
					})
					lower, err := sn.View(ctx, "base-view", "base")
					must(t, err)
					var tarball bytes.Buffer
					res, err := Compare(ctx, lower, upper, &tarball, opts)
					must(t, err)
					if res.MediaType != c.MediaType() {
						t.Errorf("media type %s, want %s", res.MediaType, c.MediaType())
					}
					digests = append(digests, res.Digest.String()+" "+res.DiffID.String())
					if i == 0 {
						// Let the clock move so unclamped mtimes would differ.
						time.Sleep(20 * time.Millisecond)
					}
					check, err := sn.Prepare(ctx, "check", "base")
					must(t, err)
					_, err = Apply(ctx, check, bytes.NewReader(tarball.Bytes()), layer.Options{ExpectedDiffID: res.DiffID, NoSync: true})
					must(t, err)
				}
				if digests[0] != digests[1] {
					t.Errorf("same changes gave %s then %s", digests[0], digests[1])
				}
			})
		}
	}
}

// TestWalkEmptyLower: no lower mounts means the whole upper tree is added.
func TestWalkEmptyLower(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	sn := snapshotters["native"](t)
	m, err := sn.Prepare(ctx, "a", "")
	must(t, err)
	var want map[string]string
	mounted(t, m, func(dir string) { baseTree(t, dir); want = tree(t, dir) })
	var tarball bytes.Buffer
	res, err := Compare(ctx, nil, m, &tarball, Options{})
	must(t, err)
	b, err := sn.Prepare(ctx, "b", "")
	must(t, err)
	_, err = Apply(ctx, b, &tarball, layer.Options{ExpectedDiffID: res.DiffID, NoSync: true})
	must(t, err)
	mounted(t, b, func(dir string) {
		if diff := cmp.Diff(want, tree(t, dir)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func listLayer(t *testing.T, b []byte) string {
	t.Helper()
	entries, err := List(bytes.NewReader(b))
	if err != nil {
		return err.Error()
	}
	return strings.Join(entries, "\n")
}

// TestOverlayRedirectWalks: a directory renamed on an overlay mounted with
// redirect_dir=on is a redirect xattr in the upperdir, which the upperdir
// alone cannot express as a layer: Compare walks, and the layer is right.
func TestOverlayRedirectWalks(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	sn := snapshotters["overlayfs"](t)
	m, err := sn.Prepare(ctx, "base-active", "")
	must(t, err)
	mounted(t, m, func(dir string) { baseTree(t, dir) })
	must(t, sn.Commit(ctx, "base", "base-active"))
	upper, err := sn.Prepare(ctx, "work", "base")
	must(t, err)
	upper[0].Options = append(upper[0].Options, "redirect_dir=on")
	var want map[string]string
	dir := t.TempDir()
	if err := snapshot.MountAll(upper, dir); err != nil {
		t.Skipf("overlay with redirect_dir=on: %v", err)
	}
	must(t, os.Rename(filepath.Join(dir, "var/cache/app"), filepath.Join(dir, "var/cache/moved")))
	want = tree(t, dir)
	must(t, snapshot.UnmountAll(dir))
	lower, err := sn.View(ctx, "base-view", "base")
	must(t, err)
	var tarball bytes.Buffer
	res, err := Compare(ctx, lower, upper, &tarball, Options{})
	must(t, err)
	if res.FastPath {
		t.Error("Compare read an upperdir with a redirect directly")
	}
	check, err := sn.Prepare(ctx, "check", "base")
	must(t, err)
	_, err = Apply(ctx, check, &tarball, layer.Options{ExpectedDiffID: res.DiffID, NoSync: true})
	must(t, err)
	mounted(t, check, func(dir string) {
		if diff := cmp.Diff(want, tree(t, dir)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}
