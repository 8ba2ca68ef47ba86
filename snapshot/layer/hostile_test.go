package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

func devices() []*tar.Header {
	return []*tar.Header{
		dir("dev/"),
		{Name: "dev/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1},
		{Name: "kmsg", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 11},
		{Name: "dev/sda", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 8, Devminor: 0},
		{Name: "dev/fifo", Typeflag: tar.TypeFifo, Mode: 0o600},
		reg("after"),
	}
}

func TestApply_DevicesSkipped(t *testing.T) {
	testutil.RequireRoot(t)
	layer := buildTar(t, devices(), map[string]string{"after": "x"})
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "allowed"}[allow], func(t *testing.T) {
			s := newSandbox(t)
			res, err := Apply(context.Background(), s.root, bytes.NewReader(layer), Options{AllowDevices: allow, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			wantSkipped := 3
			if allow {
				wantSkipped = 0
			}
			if res.SkippedDevices != wantSkipped || len(res.SkippedDeviceNames) != wantSkipped {
				t.Errorf("skipped %d %v, want %d", res.SkippedDevices, res.SkippedDeviceNames, wantSkipped)
			}
			if !allow && !strings.Contains(strings.Join(res.SkippedDeviceNames, " "), "dev/mem (3 1,1)") {
				t.Errorf("skipped names %v do not name dev/mem 1,1", res.SkippedDeviceNames)
			}
			for _, p := range []string{"dev/mem", "kmsg", "dev/sda"} {
				_, err := os.Lstat(filepath.Join(s.root, p))
				if exists := err == nil; exists != allow {
					t.Errorf("%s exists=%v, want %v", p, exists, allow)
				}
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(s.root, "dev/fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
				t.Errorf("fifo: mode %o, %v; want a fifo", st.Mode, err)
			}
			if _, err := os.Stat(filepath.Join(s.root, "after")); err != nil {
				t.Errorf("entry after the devices: %v", err)
			}
			s.checkOutside(t)
		})
	}
}

func TestApply_OwnerIDsOutOfRange(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name     string
		uid, gid int
		ok       bool
	}{
		{"uid 2^40", 1 << 40, 0, false},
		{"gid 2^40", 0, 1 << 40, false},
		{"uid 2^32-1 (chown's -1)", 1<<32 - 1, 0, false},
		{"gid 2^32-1", 0, 1<<32 - 1, false},
		{"uid 2^32 (wraps to 0)", 1 << 32, 1000, false},
		{"negative", -1, 0, false},
		{"largest", 1<<32 - 2, 1<<32 - 2, true},
	}
	for _, typ := range []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeFifo} {
		for _, tc := range tests {
			t.Run(string(typ)+"/"+tc.name, func(t *testing.T) {
				s := newSandbox(t)
				h := &tar.Header{Name: "victim", Typeflag: typ, Uid: tc.uid, Gid: tc.gid, Mode: 0o4755, Linkname: "x", Format: tar.FormatPAX}
				layer := buildTar(t, []*tar.Header{h}, nil)
				_, err := Apply(context.Background(), s.root, bytes.NewReader(layer), Options{NoSync: true})
				var st unix.Stat_t
				serr := unix.Lstat(filepath.Join(s.root, "victim"), &st)
				if tc.ok {
					if err != nil || serr != nil || int(st.Uid) != tc.uid || int(st.Gid) != tc.gid {
						t.Fatalf("got %v, owner %d:%d (%v); want %d:%d", err, st.Uid, st.Gid, serr, tc.uid, tc.gid)
					}
					return
				}
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `"victim"`) {
					t.Fatalf("got %v, want an invalid-argument error naming \"victim\"", err)
				}
				if serr == nil && (st.Uid == 0 || st.Gid == 0) {
					t.Errorf("victim left owned by %d:%d", st.Uid, st.Gid)
				}
			})
		}
	}
}

func TestApply_Xattrs(t *testing.T) {
	testutil.RequireRoot(t)
	x := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m["SCHILY.xattr."+kv[i]] = kv[i+1]
		}
		return m
	}
	capability := "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	hdrs := []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: x(
			"trusted.overlay.opaque", "y",
			"trusted.overlay.redirect", "/../../../../etc",
			"security.selinux", "system_u:object_r:shadow_t:s0",
			"user.keep", "1")},
		{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o755, PAXRecords: x(
			"security.capability", capability,
			"trusted.foo", "bar",
			"security.ima", "sig",
			"user.k", "v")},
	}
	layer := buildTar(t, hdrs, map[string]string{"d/f": "bin"})
	for _, overlay := range []bool{false, true} {
		t.Run(map[bool]string{false: "native", true: "overlay"}[overlay], func(t *testing.T) {
			s := newSandbox(t)
			res, err := Apply(context.Background(), s.root, bytes.NewReader(layer), Options{NoSync: true, OverlayWhiteouts: overlay})
			if err != nil {
				t.Fatal(err)
			}
			if res.DroppedXattrs != 5 {
				t.Errorf("dropped %d xattrs, want 5", res.DroppedXattrs)
			}
			for p, want := range map[string][]string{"d": {"user.keep"}, "d/f": {"security.capability", "user.k"}} {
				if got := listXattrs(t, filepath.Join(s.root, p)); strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("%s: xattrs %v, want %v", p, got, want)
				}
			}
		})
	}
}

func listXattrs(t *testing.T, p string) []string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var out []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			out = append(out, s)
		}
	}
	return sortStrings(out)
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestApply_SparseWrittenAsHoles(t *testing.T) {
	const size = 256 << 20
	frags := []fragment{{0, "head"}, {100 << 20, "middle"}, {size - 4, "tail"}}
	layer := sparseTar(t, "big", size, frags)
	s := newSandbox(t)
	res, err := Apply(context.Background(), s.root, bytes.NewReader(layer), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.root, "big")
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size {
		t.Errorf("size %d, want %d", st.Size, size)
	}
	if used := st.Blocks * 512; used > 1<<20 {
		t.Errorf("%d bytes on disk for %d of data: holes were written out", used, len("headmiddletail"))
	}
	f, _ := os.Open(p)
	defer f.Close()
	for _, fr := range frags {
		b := make([]byte, len(fr.data))
		if _, err := f.ReadAt(b, fr.off); err != nil || string(b) != fr.data {
			t.Errorf("at %d: %q %v, want %q", fr.off, b, err, fr.data)
		}
	}
	if res.Size > 8<<10 {
		t.Errorf("stream of %d bytes, want a few KiB", res.Size)
	}
	s.checkOutside(t)
}

func TestApply_SizeLimits(t *testing.T) {
	var bomb bytes.Buffer
	gw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	tw := tar.NewWriter(gw)
	tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 64 << 20})
	tw.Write(make([]byte, 64<<20))
	tw.Close()
	gw.Close()
	tests := []struct {
		name   string
		layer  []byte
		limits Limits
	}{
		{"sparse 1 TiB, default cap", sparseTar(t, "huge", 1<<40, []fragment{{0, "x"}}), Limits{}},
		{"sparse over the cap", sparseTar(t, "big", 32<<20, []fragment{{0, "x"}}), Limits{MaxSize: 16 << 20}},
		{"gzip bomb over the cap", bomb.Bytes(), Limits{MaxSize: 16 << 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := Apply(context.Background(), s.root, bytes.NewReader(tc.layer), Options{NoSync: true, Limits: tc.limits})
			if err == nil || !strings.Contains(err.Error(), "bytes") {
				t.Fatalf("got %v, want the size limit refused", err)
			}
			s.checkOutside(t)
		})
	}
}

func TestApply_FreeSpaceReserve(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	layer := buildTar(t, []*tar.Header{reg("big")}, map[string]string{"big": strings.Repeat("x", 100<<20)})
	for name, fs := range map[string]FreeSpace{"bytes": {Bytes: 16 << 20}, "percent": {Percent: 25}} {
		t.Run(name, func(t *testing.T) {
			_, err := Apply(context.Background(), root, bytes.NewReader(layer), Options{NoSync: true, FreeSpace: fs})
			if !errdefs.IsResourceExhausted(err) || !strings.Contains(err.Error(), "reserve") {
				t.Fatalf("got %v, want a ResourceExhausted error naming the reserve", err)
			}
			var st unix.Statfs_t
			unix.Statfs(dir, &st)
			if free := st.Bavail * uint64(st.Bsize); free < 8<<20 {
				t.Errorf("only %d bytes left free: the reserve was not kept", free)
			}
			os.RemoveAll(root)
			os.Mkdir(root, 0o755)
		})
	}
}
