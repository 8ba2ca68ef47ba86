package network

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A name of both families is dialled from inside the namespace too: the
// dialer's racing of the two families ran on other threads, in berthd's
// namespace, and reached a listener of the host.
func TestDialIn_NameOfBothFamiliesStaysInNamespace(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (network namespaces)")
		}
		t.Skip("needs root (network namespaces)")
	}
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := strconv.Itoa(host.Addr().(*net.TCPAddr).Port)
	ns := filepath.Join(t.TempDir(), "ns")
	if err := createNetNS(ns); err != nil {
		t.Fatal(err)
	}
	defer removeNetNS(ns)

	old := lookupIPAddr
	lookupIPAddr = func(context.Context, string) ([]net.IPAddr, error) {
		return []net.IPAddr{{IP: net.IPv6loopback}, {IP: net.IPv4(127, 0, 0, 1)}}, nil
	}
	defer func() { lookupIPAddr = old }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, addr := range []string{"dual.test:" + port, "127.0.0.1:" + port} {
		if c, err := DialIn(ctx, ns, addr); err == nil {
			c.Close()
			t.Errorf("DialIn(%s) into an empty namespace: got a connection (the host's listener), want refused", addr)
		}
	}
	runtime.LockOSThread() // so that this thread's namespace is berthd's
	defer runtime.UnlockOSThread()
	own := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	if c, err := DialIn(ctx, own, "dual.test:"+port); err != nil {
		t.Errorf("DialIn(dual.test) in berthd's own namespace: %v, want the host's listener", err)
	} else {
		c.Close()
	}
}
