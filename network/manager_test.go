package network

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// newTestManager is a Manager on temporary directories with its own
// built-in bridge and subnet, so it disturbs nothing else on the host.
func newTestManager(t testing.TB) *Manager {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		testutil.Missing(t, "CNI plugins in /usr/lib/cni (make deps): %v", err)
	}
	dir := t.TempDir()
	m, err := New(Options{ConfDir: dir + "/net.d", Root: dir + "/root", State: dir + "/state",
		Bridge: "berth-ut0", Subnet: "10.86.250.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManager_AttachDetach(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	a, err := m.Attach(ctx, Request{Namespace: "default", ID: "c1", Network: BuiltinNetwork,
		Ports: []PortMapping{{HostPort: 18391, ContainerPort: 80, Protocol: "tcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attached: %+v", a)
	if !strings.HasPrefix(a.IP(), "10.86.250.") {
		t.Fatalf("got ip %q, want one of 10.86.250.0/24", a.IP())
	}
	if !isNetNS(a.NetNS) {
		t.Fatalf("netns %s is not mounted", a.NetNS)
	}
	out, err := exec.Command("nsenter", "--net="+a.NetNS, "ip", "-o", "addr").CombinedOutput()
	if err != nil || !strings.Contains(string(out), a.IP()) {
		t.Fatalf("ip addr in the namespace: %v\n%s", err, out)
	}
	// A listener inside the namespace answers on the published port from
	// the host's loopback.
	srv := exec.Command("nsenter", "--net="+a.NetNS, "busybox", "nc", "-l", "-p", "80", "-e", "echo", "hello")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	var got string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:18391", time.Second)
		if err == nil {
			buf := make([]byte, 64)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _ := c.Read(buf)
			c.Close()
			got = string(buf[:n])
			if got != "" {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(got, "hello") {
		t.Errorf("127.0.0.1:18391 answered %q, want hello", got)
	}
	if _, err := m.Attach(ctx, Request{Namespace: "default", ID: "c2", Network: BuiltinNetwork,
		Ports: []PortMapping{{HostPort: 18391, ContainerPort: 80, Protocol: "tcp"}}}); err == nil || !strings.Contains(err.Error(), "default/c1") {
		t.Errorf("second attach on the same host port: got %v, want a conflict naming default/c1", err)
	}
	if err := m.Detach(ctx, "default", "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.NetNS); !os.IsNotExist(err) {
		t.Errorf("netns file after detach: %v", err)
	}
	if _, err := os.Stat("/sys/class/net/berth-ut0"); !os.IsNotExist(err) {
		t.Errorf("bridge after the last detach: %v", err)
	}
	if err := m.Detach(ctx, "default", "c1"); err != nil {
		t.Errorf("second detach: %v", err)
	}
}

// TestManager_DetachRemovesRules checks that DEL removes what ADD put in
// the firewall: the masquerade chain and the firewall plugin's rules.
func TestManager_DetachRemovesRules(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	rules := func(a Attachment) string {
		out, _ := exec.Command("iptables-save").Output()
		var mine []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, a.IP()+"/32") || strings.Contains(l, key(a.Namespace, a.ID)+`\"`) {
				mine = append(mine, l)
			}
		}
		return strings.Join(mine, "\n")
	}
	// A third container keeps the network in use throughout: the others'
	// rules must go by their own detach, not by the cleanup of an empty
	// network.
	if _, err := m.Attach(ctx, Request{Namespace: "default", ID: "keep", Network: BuiltinNetwork}); err != nil {
		t.Fatal(err)
	}
	defer m.Detach(ctx, "default", "keep")
	for _, tc := range []struct {
		id string
		// before runs between attach and detach.
		before func(a Attachment)
	}{
		{id: "plain"},
		// The interface gone before DEL (a DEL run again after a failed
		// one, a crash): the bridge plugin then skips its masquerade
		// teardown (containernetworking/plugins#810).
		{id: "noeth0", before: func(a Attachment) {
			if out, err := exec.Command("nsenter", "--net="+a.NetNS, "ip", "link", "del", "eth0").CombinedOutput(); err != nil {
				t.Fatalf("delete eth0: %v: %s", err, out)
			}
		}},
	} {
		t.Run(tc.id, func(t *testing.T) {
			a, err := m.Attach(ctx, Request{Namespace: "default", ID: tc.id, Network: BuiltinNetwork,
				Ports: []PortMapping{{HostPort: 18392, ContainerPort: 80, Protocol: "tcp"}}})
			if err != nil {
				t.Fatal(err)
			}
			if rules(a) == "" {
				t.Fatalf("no iptables rule names %s after attach", a.IP())
			}
			if tc.before != nil {
				tc.before(a)
			}
			if err := m.Detach(ctx, "default", tc.id); err != nil {
				t.Fatal(err)
			}
			if r := rules(a); r != "" {
				t.Errorf("rules left after detach:\n%s", r)
			}
		})
	}
}

func TestSplitRule(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`-A POSTROUTING -s 10.86.1.2/32 -m comment --comment "name: \"berth\" id: \"default.web1\"" -j CNI-460d`,
			[]string{"-A", "POSTROUTING", "-s", "10.86.1.2/32", "-m", "comment", "--comment", `name: "berth" id: "default.web1"`, "-j", "CNI-460d"}},
		{`-A CNI-FORWARD -j CNI-ADMIN`, []string{"-A", "CNI-FORWARD", "-j", "CNI-ADMIN"}},
		{`-A X -m comment --comment "" -j Y`, []string{"-A", "X", "-m", "comment", "--comment", "", "-j", "Y"}},
	} {
		if got := splitRule(tc.in); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("splitRule(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
