package oci

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
huge:x:4294967296:0::/:/bin/sh
+nis
`

const testGroup = `root:x:0:
daemon:x:1:
wheel:x:10:app,other
app:x:1000:
audio:x:29:other, app
nogroup:x:65534:
`

// writeRootfs makes a rootfs with the given files under etc/.
func writeRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolveUser(t *testing.T) {
	root := writeRootfs(t, map[string]string{"passwd": testPasswd, "group": testGroup})
	for _, tc := range []struct {
		user    string
		want    specs.User
		wantErr error
	}{
		{user: "", want: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}, Username: "root"}},
		{user: "0", want: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}, Username: "root"}},
		{user: "root:root", want: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}, Username: "root"}},
		{user: "1000", want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 29}, Username: "app"}},
		{user: "1000:1000", want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 29}, Username: "app"}},
		{user: "app", want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 29}, Username: "app"}},
		{user: "app:wheel", want: specs.User{UID: 1000, GID: 10, AdditionalGids: []uint32{10, 29}, Username: "app"}},
		{user: "app:5", want: specs.User{UID: 1000, GID: 5, AdditionalGids: []uint32{5, 10, 29}, Username: "app"}},
		{user: "nobody", want: specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534}, Username: "nobody"}},
		{user: "4242", want: specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}}},
		{user: "4242:4243", want: specs.User{UID: 4242, GID: 4243, AdditionalGids: []uint32{4243}}},
		{user: "2147483647", want: specs.User{UID: 2147483647, GID: 0, AdditionalGids: []uint32{0}}},
		{user: "2147483648", wantErr: errdefs.ErrInvalidArgument},
		{user: "4294967296", wantErr: errdefs.ErrInvalidArgument},
		{user: "-1", wantErr: errdefs.ErrInvalidArgument},
		{user: "+5", want: specs.User{UID: 5, GID: 0, AdditionalGids: []uint32{0}}},
		{user: "1000:-1", wantErr: errdefs.ErrInvalidArgument},
		{user: "1000:4294967296", wantErr: errdefs.ErrInvalidArgument},
		{user: "huge", wantErr: errdefs.ErrNotFound},
		{user: "ghost", wantErr: errdefs.ErrNotFound},
		{user: "app:ghosts", wantErr: errdefs.ErrNotFound},
		{user: ":0", wantErr: errdefs.ErrInvalidArgument},
		{user: "0:", wantErr: errdefs.ErrInvalidArgument},
		{user: "a b", wantErr: errdefs.ErrInvalidArgument},
		{user: "+nis", wantErr: errdefs.ErrInvalidArgument},
		{user: "1:2:3", wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.user, func(t *testing.T) {
			got, err := resolveUser(context.Background(), root, tc.user)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %+v, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveUser_NoPasswd(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		user    string
		want    specs.User
		wantErr error
	}{
		{user: "", want: specs.User{AdditionalGids: []uint32{0}}},
		{user: "1000", want: specs.User{UID: 1000, AdditionalGids: []uint32{0}}},
		{user: "1000:1000", want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000}}},
		{user: "nobody", wantErr: errdefs.ErrNotFound},
		{user: "1000:staff", wantErr: errdefs.ErrNotFound},
	} {
		t.Run(tc.user, func(t *testing.T) {
			got, err := resolveUser(context.Background(), root, tc.user)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %+v, %v; want %v", got, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "nobody") && !strings.Contains(err.Error(), "staff") {
					t.Errorf("error %q does not name what is missing", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
		})
	}
}

// A hostile image must not be able to hang berth with a FIFO, nor make it
// read a host file through a symlink.
func TestResolveUser_HostileRootfs(t *testing.T) {
	outside := t.TempDir()
	hostPasswd := filepath.Join(outside, "shadow")
	if err := os.WriteFile(hostPasswd, []byte("evil:x:4242:4242::/:/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, root string)
		user    string
		wantErr error
	}{
		{name: "fifo passwd", user: "evil", wantErr: errdefs.ErrInvalidArgument, setup: func(t *testing.T, root string) {
			mkfifo(t, filepath.Join(root, "etc/passwd"))
		}},
		{name: "fifo passwd numeric user", user: "0", wantErr: errdefs.ErrInvalidArgument, setup: func(t *testing.T, root string) {
			mkfifo(t, filepath.Join(root, "etc/passwd"))
		}},
		{name: "fifo group", user: "0:evil", wantErr: errdefs.ErrInvalidArgument, setup: func(t *testing.T, root string) {
			mkfifo(t, filepath.Join(root, "etc/group"))
		}},
		{name: "directory passwd", user: "evil", wantErr: errdefs.ErrInvalidArgument, setup: func(t *testing.T, root string) {
			os.Mkdir(filepath.Join(root, "etc/passwd"), 0o755)
		}},
		{name: "absolute symlink to host file", user: "evil", wantErr: errdefs.ErrNotFound, setup: func(t *testing.T, root string) {
			symlink(t, hostPasswd, filepath.Join(root, "etc/passwd"))
		}},
		{name: "relative symlink out of root", user: "evil", wantErr: errdefs.ErrNotFound, setup: func(t *testing.T, root string) {
			rel, _ := filepath.Rel(filepath.Join(root, "etc"), hostPasswd)
			symlink(t, rel, filepath.Join(root, "etc/passwd"))
		}},
		{name: "symlinked etc dir", user: "evil", wantErr: errdefs.ErrNotFound, setup: func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "etc"))
			symlink(t, outside, filepath.Join(root, "etc"))
			os.Rename(hostPasswd, filepath.Join(outside, "passwd"))
			t.Cleanup(func() { os.Rename(filepath.Join(outside, "passwd"), hostPasswd) })
		}},
		{name: "oversized passwd", user: "evil", wantErr: errdefs.ErrInvalidArgument, setup: func(t *testing.T, root string) {
			big := strings.Repeat("#"+strings.Repeat("x", 1023)+"\n", 1025) + "evil:x:4242:4242::/:/bin/sh\n"
			os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(big), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, root)
			done := make(chan struct{})
			var got specs.User
			var err error
			go func() {
				defer close(done)
				got, err = resolveUser(context.Background(), root, tc.user)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("resolveUser hung")
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %+v, %v; want %v", got, err, tc.wantErr)
			}
			if got.UID == 4242 {
				t.Fatalf("read the host's file: %+v", got)
			}
		})
	}
}

// A symlink that stays inside the rootfs is followed there, as the
// container would follow it, even when it is absolute.
func TestResolveUser_SymlinkInsideRoot(t *testing.T) {
	root := writeRootfs(t, map[string]string{"passwd.real": testPasswd})
	symlink(t, "/etc/passwd.real", filepath.Join(root, "etc/passwd"))
	got, err := resolveUser(context.Background(), root, "app")
	if err != nil || got.UID != 1000 {
		t.Fatalf("got %+v, %v; want uid 1000", got, err)
	}
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
