package network

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// A detach whose plugins failed every try in the background leaves its
// record "detaching" until berthd's next start. A later attach of the host
// port it held finishes that detach instead of being refused for a
// container that is gone.
func TestManager_AttachAfterFailedDetachTakesPort(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		testutil.Missing(t, "CNI plugins in /usr/lib/cni (make deps): %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	plugins, _ := filepath.Glob("/usr/lib/cni/*")
	for _, p := range plugins {
		if err := os.Symlink(p, filepath.Join(bin, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	m, err := New(Options{ConfDir: dir + "/net.d", Root: dir + "/root", State: dir + "/state",
		Bridge: "berth-ut3", Subnet: "10.86.247.0/24", BinDirs: []string{bin}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() {
		_ = m.Detach(ctx, "default", "c2")
		_ = m.Detach(ctx, "default", "c1")
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = m.Close(cctx)
	})
	port := []PortMapping{{HostPort: 18397, ContainerPort: 80, Protocol: "tcp"}}
	if _, err := m.Attach(ctx, Request{Namespace: "default", ID: "c1", Network: BuiltinNetwork, Ports: port}); err != nil {
		t.Fatal(err)
	}
	gone := bin + ".gone"
	if err := os.Rename(bin, gone); err != nil { // every DEL fails
		t.Fatal(err)
	}
	if err := m.Detach(ctx, "default", "c1"); err != nil {
		t.Fatal(err)
	}
	m.bg.Wait() // its tries in the background, all failed
	if err := os.Rename(gone, bin); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, Request{Namespace: "default", ID: "c2", Network: BuiltinNetwork, Ports: port}); err != nil {
		t.Fatalf("attach of the port a failed detach held: %v", err)
	}
	if _, err := m.readRecord("default", "c1"); err == nil {
		t.Error("c1's record is still there after its detach was finished")
	}
}
