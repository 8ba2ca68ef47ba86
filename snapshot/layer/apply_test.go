package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

// buildTar writes hdrs (with content for regular files) as a tar.
func buildTar(t testing.TB, hdrs []*tar.Header, contents map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(contents[h.Name]))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1_600_000_000, 0)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(contents[h.Name]))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func reg(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
func dir(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
func symlink(name, to string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to, Mode: 0o777}
}
func hardlink(name, to string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: to}
}

// sandbox is a root inside a parent directory holding a marker, to check
// that nothing outside the root changes.
type sandbox struct {
	parent, root string
	before       []string
}

func newSandbox(t testing.TB) *sandbox {
	parent := t.TempDir()
	s := &sandbox{parent: parent, root: filepath.Join(parent, "root")}
	if err := os.Mkdir(s.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "marker"), []byte("m"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.before = s.outside(t)
	return s
}

// outside lists the tree around root, root excluded, with sizes.
func (s *sandbox) outside(t testing.TB) []string {
	var out []string
	filepath.Walk(s.parent, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == s.root {
			return filepath.SkipDir
		}
		out = append(out, fmt.Sprintf("%s %v %d", p, fi.Mode(), fi.Size()))
		return nil
	})
	sort.Strings(out)
	return out
}

func (s *sandbox) checkOutside(t testing.TB) {
	t.Helper()
	if got := s.outside(t); strings.Join(got, "\n") != strings.Join(s.before, "\n") {
		t.Errorf("outside the root changed:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(s.before, "\n"))
	}
}

func TestApply_Hostile(t *testing.T) {
	t.Parallel()
	testutil.RequireRoot(t)
	escape := "berth-escape-" + fmt.Sprint(time.Now().UnixNano())
	shadowBefore := statNlink(t, "/etc/shadow")
	tests := []struct {
		name  string
		hdrs  []*tar.Header
		entry string // the entry the error must name
	}{
		{"dotdot", []*tar.Header{reg("../" + escape)}, "../" + escape},
		{"inner dotdot", []*tar.Header{dir("a/"), reg("a/../../" + escape)}, "a/../../" + escape},
		{"symlink to / then write through", []*tar.Header{symlink("link", "/"), reg("link/tmp/" + escape)}, "link/tmp/" + escape},
		{"relative symlink out then write", []*tar.Header{symlink("up", "../.."), reg("up/" + escape)}, "up/" + escape},
		{"symlink dir then mkdir through", []*tar.Header{symlink("d", "/tmp"), dir("d/" + escape + "/")}, "d/" + escape + "/"},
		{"hardlink to /etc/shadow", []*tar.Header{hardlink("shadow", "/etc/shadow")}, "shadow"},
		{"hardlink dotdot", []*tar.Header{hardlink("shadow", "../../../../etc/shadow")}, "shadow"},
		{"hardlink through symlink", []*tar.Header{symlink("etc", "/etc"), hardlink("shadow", "etc/shadow")}, "shadow"},
		{"whiteout dotdot", []*tar.Header{dir("a/"), reg("a/.wh..."), reg("a/x")}, "a/.wh..."},
		{"whiteout through symlink", []*tar.Header{symlink("l", "/tmp"), reg("l/.wh." + escape)}, "l/.wh." + escape},
		{"long name", []*tar.Header{reg(strings.Repeat("a/", 2100) + "x")}, "a/a/a/"},
	}
	for _, overlay := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/overlay=%v", tc.name, overlay), func(t *testing.T) {
				s := newSandbox(t)
				layer := buildTar(t, tc.hdrs, nil)
				_, err := Apply(context.Background(), s.root, bytes.NewReader(layer), Options{OverlayWhiteouts: overlay})
				if err == nil {
					t.Fatalf("applied a hostile layer")
				}
				if testing.Verbose() {
					t.Log(err)
				}
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.entry)[:min(len(tc.entry), 20)]) {
					t.Errorf("got %v, want an invalid-argument error naming %q", err, tc.entry)
				}
				s.checkOutside(t)
				for _, p := range []string{"/tmp/" + escape, "/" + escape, "/etc/" + escape} {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("%s was written", p)
					}
				}
				if n := statNlink(t, "/etc/shadow"); n != shadowBefore {
					t.Errorf("/etc/shadow nlink %d, was %d", n, shadowBefore)
				}
			})
		}
	}
}

func statNlink(t *testing.T, p string) uint64 {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return 0
	}
	return uint64(st.Nlink)
}

func TestApply_AbsolutePathsAreCleaned(t *testing.T) {
	t.Parallel()
	testutil.RequireRoot(t)
	s := newSandbox(t)
	layer := buildTar(t, []*tar.Header{reg("/abs.txt"), reg("./dot.txt"), hardlink("/hl", "/abs.txt")},
		map[string]string{"/abs.txt": "abs", "./dot.txt": "dot"})
	if _, err := Apply(context.Background(), s.root, bytes.NewReader(layer), Options{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"abs.txt": "abs", "dot.txt": "dot", "hl": "abs"} {
		if b, err := os.ReadFile(filepath.Join(s.root, p)); err != nil || string(b) != want {
			t.Errorf("%s: got %q, %v; want %q", p, b, err, want)
		}
	}
	s.checkOutside(t)
}

func TestApply_Limits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		hdrs   []*tar.Header
		limits Limits
	}{
		{"entries", []*tar.Header{reg("a"), reg("b"), reg("c")}, Limits{MaxEntries: 2}},
		{"path length", []*tar.Header{reg(strings.Repeat("x", 100))}, Limits{MaxPathLen: 50}},
		{"xattr size", []*tar.Header{{Name: "x", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.user.big": strings.Repeat("v", 200)}}}, Limits{MaxXattrSize: 100}},
		{"size", []*tar.Header{reg("a")}, Limits{MaxSize: 512}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			layer := buildTar(t, tc.hdrs, map[string]string{"a": strings.Repeat("z", 4096)})
			if _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(layer), Options{Limits: tc.limits, NoSync: true}); err == nil {
				t.Errorf("limit %+v not enforced", tc.limits)
			}
		})
	}
}

func TestApply_TypesAndCompression(t *testing.T) {
	t.Parallel()
	testutil.RequireRoot(t)
	mtime := time.Unix(1_500_000_000, 0)
	hdrs := []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mtime},
		{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 1000, Gid: 1001, ModTime: mtime,
			PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}},
		hardlink("d/h", "d/f"),
		symlink("d/s", "/nowhere"),
		{Name: "d/fifo", Typeflag: tar.TypeFifo, Mode: 0o600},
		{Name: "d/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		reg("implied/parent/file"),
	}
	layer := buildTar(t, hdrs, map[string]string{"d/f": "data", "implied/parent/file": "x"})
	sum := sha256.Sum256(layer)
	want := digest.NewDigestFromBytes(digest.SHA256, sum[:])
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(layer)
	gw.Close()
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(layer)
	zw.Close()
	for name, blob := range map[string][]byte{"tar": layer, "gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			res, err := Apply(context.Background(), root, bytes.NewReader(blob), Options{ExpectedDiffID: want, AllowDevices: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.DiffID != want || res.Size != int64(len(layer)) {
				t.Errorf("result %+v, want %s and %d bytes", res, want, len(layer))
			}
			var st unix.Stat_t
			unix.Lstat(filepath.Join(root, "d/f"), &st)
			if st.Mode&0o7777 != 0o4755 || st.Uid != 1000 || st.Gid != 1001 || st.Nlink != 2 || st.Mtim.Sec != mtime.Unix() {
				t.Errorf("d/f: mode %o uid %d gid %d nlink %d mtime %d", st.Mode&0o7777, st.Uid, st.Gid, st.Nlink, st.Mtim.Sec)
			}
			v := make([]byte, 16)
			if n, err := unix.Lgetxattr(filepath.Join(root, "d/f"), "user.k", v); err != nil || string(v[:n]) != "v" {
				t.Errorf("xattr: %q %v", v[:n], err)
			}
			unix.Lstat(filepath.Join(root, "d"), &st)
			if st.Mode&0o7777 != 0o1777 || st.Mtim.Sec != mtime.Unix() {
				t.Errorf("d: mode %o mtime %d", st.Mode&0o7777, st.Mtim.Sec)
			}
			if l, _ := os.Readlink(filepath.Join(root, "d/s")); l != "/nowhere" {
				t.Errorf("symlink: %q", l)
			}
			unix.Lstat(filepath.Join(root, "d/null"), &st)
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
				t.Errorf("char dev: mode %o rdev %d", st.Mode, st.Rdev)
			}
			unix.Lstat(filepath.Join(root, "d/fifo"), &st)
			if st.Mode&unix.S_IFMT != unix.S_IFIFO {
				t.Errorf("fifo: mode %o", st.Mode)
			}
		})
	}
	t.Run("diffID mismatch", func(t *testing.T) {
		_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(layer), Options{ExpectedDiffID: digest.FromString("x")})
		if !errdefs.IsFailedPrecondition(err) {
			t.Errorf("got %v, want FailedPrecondition", err)
		}
	})
}

func TestApply_Whiteouts(t *testing.T) {
	t.Parallel()
	testutil.RequireRoot(t)
	base := buildTar(t, []*tar.Header{dir("w/"), reg("w/gone"), dir("w/gonedir/"), reg("w/gonedir/x"), dir("o/"), reg("o/old"), reg("keep")}, nil)
	upper := buildTar(t, []*tar.Header{reg("w/.wh.gone"), reg("w/.wh.gonedir"), reg("o/.wh..wh..opq"), reg("o/new"), reg("x/.wh.never-there")}, nil)
	t.Run("delete", func(t *testing.T) {
		root := t.TempDir()
		for _, l := range [][]byte{base, upper} {
			if _, err := Apply(context.Background(), root, bytes.NewReader(l), Options{NoSync: true}); err != nil {
				t.Fatal(err)
			}
		}
		for p, want := range map[string]bool{"w": true, "w/gone": false, "w/gonedir": false, "o/old": false, "o/new": true, "keep": true, "w/.wh.gone": false, "x": false} {
			if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != want {
				t.Errorf("%s: exists=%v, want %v", p, err == nil, want)
			}
		}
	})
	t.Run("overlay", func(t *testing.T) {
		lower, up := t.TempDir(), t.TempDir()
		if _, err := Apply(context.Background(), lower, bytes.NewReader(base), Options{NoSync: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(context.Background(), up, bytes.NewReader(upper), Options{NoSync: true, OverlayWhiteouts: true, Parents: []string{lower}}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"w/gone", "w/gonedir", "x/never-there"} {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(up, p), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Errorf("%s: want a 0/0 char device whiteout, got mode %o rdev %d err %v", p, st.Mode, st.Rdev, err)
			}
		}
		v := make([]byte, 4)
		if n, err := unix.Lgetxattr(filepath.Join(up, "o"), "trusted.overlay.opaque", v); err != nil || string(v[:n]) != "y" {
			t.Errorf("opaque xattr: %q %v", v[:n], err)
		}
		if _, err := os.Stat(filepath.Join(up, "o/new")); err != nil {
			t.Errorf("o/new: %v", err)
		}
	})
}
