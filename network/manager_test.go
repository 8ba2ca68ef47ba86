package network

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	// Detaches run in the background: done before the directories go.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Error(err)
		}
	})
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
	m.bg.Wait() // the detach's plugins run in the background
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
			m.bg.Wait()
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

// TestManager_ParallelAttaches attaches containers side by side: each gets
// an address of its own, berth's subnet rules exist while they are
// attached, a container detached in the background hands its host port
// and its name over to the next attach, and once all are gone nothing of
// the network is left (bridge, rules, chains, leases, namespaces).
func TestManager_ParallelAttaches(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	addrs := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := m.Attach(ctx, Request{Namespace: "default", ID: fmt.Sprintf("p%d", i), Network: BuiltinNetwork})
			addrs[i], errs[i] = a.IP(), err
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("attach p%d: %v", i, errs[i])
		}
		if seen[addrs[i]] {
			t.Errorf("address %s given twice", addrs[i])
		}
		seen[addrs[i]] = true
	}
	save := func() string { out, _ := exec.Command("iptables-save").Output(); return string(out) }
	if s := save(); !strings.Contains(s, "bridge berth-ut0 subnet 10.86.250.0/24: masquerade") || !strings.Contains(s, "bridge berth-ut0 subnet 10.86.250.0/24: from the containers") {
		t.Errorf("no subnet rules of berth-ut0 while attached:\n%s", s)
	}
	// Each one's /etc/hosts names the others.
	if b, err := os.ReadFile(filepath.Join(m.FilesDir("default", "p0"), "hosts")); err != nil || strings.Count(string(b), "10.86.250.") != n {
		t.Errorf("p0's hosts file (%v) does not name all %d containers:\n%s", err, n, b)
	}

	// A port held by a container being detached is handed over.
	port := []PortMapping{{HostPort: 18393, ContainerPort: 80, Protocol: "tcp"}}
	if _, err := m.Attach(ctx, Request{Namespace: "default", ID: "old", Network: BuiltinNetwork, Ports: port}); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, "default", "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, Request{Namespace: "default", ID: "new", Network: BuiltinNetwork, Ports: port}); err != nil {
		t.Errorf("attach right after the port's holder was detached: %v", err)
	}
	// And the same container again right after its detach.
	if err := m.Detach(ctx, "default", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, Request{Namespace: "default", ID: "new", Network: BuiltinNetwork, Ports: port}); err != nil {
		t.Errorf("attach of a container right after its detach: %v", err)
	}

	for _, id := range []string{"new", "p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"} {
		if err := m.Detach(ctx, "default", id); err != nil {
			t.Fatal(err)
		}
	}
	m.bg.Wait()
	if s := save(); strings.Contains(s, "berth-ut0") || strings.Contains(s, "10.86.250.") {
		t.Errorf("rules of berth-ut0 left:\n%s", s)
	}
	if _, err := os.Stat("/sys/class/net/berth-ut0"); !os.IsNotExist(err) {
		t.Errorf("bridge after the last detach: %v", err)
	}
	for _, d := range []string{m.NetNSDir(), filepath.Join(m.IPAMDir(), builtinCNIName)} {
		if ents, _ := os.ReadDir(d); len(ents) > 0 {
			t.Errorf("%s left: %v", d, ents)
		}
	}
}

// TestManager_RecoverAfterCrash: a new Manager on the same directories
// (berthd restarted after kill -9) finishes a detach that was cut short
// and removes berth's subnet rules and bridge of a network left with no
// container (a crash between its last detach and their removal).
func TestManager_RecoverAfterCrash(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	a, err := m.Attach(ctx, Request{Namespace: "default", ID: "cut", Network: BuiltinNetwork})
	if err != nil {
		t.Fatal(err)
	}
	// The crash: the record says detaching, nothing was undone.
	a.Phase = phaseDetaching
	if err := m.writeRecord(a); err != nil {
		t.Fatal(err)
	}
	m2, err := New(m.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Recover(ctx, func(ns, id string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	save := func() string { out, _ := exec.Command("iptables-save").Output(); return string(out) }
	if s := save(); strings.Contains(s, "berth-ut0") || strings.Contains(s, a.IP()+"/") {
		t.Errorf("rules of the cut-short detach left:\n%s", s)
	}
	if isNetNS(a.NetNS) {
		t.Errorf("namespace %s still mounted", a.NetNS)
	}
	if _, err := os.Stat("/sys/class/net/berth-ut0"); !os.IsNotExist(err) {
		t.Errorf("bridge of the emptied network left: %v", err)
	}
	if l, _ := m2.List(); len(l) > 0 {
		t.Errorf("records left: %+v", l)
	}

	// Rules and a bridge with no record at all (the crash fell after the
	// last record went): the start removes them.
	if _, err := m2.Attach(ctx, Request{Namespace: "default", ID: "gone", Network: BuiltinNetwork}); err != nil {
		t.Fatal(err)
	}
	if err := m2.removeRecord(key("default", "gone")); err != nil {
		t.Fatal(err)
	}
	_ = removeNetNS(m2.NetNSPath("default", "gone"))
	m3, err := New(m.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m3.Recover(ctx, func(ns, id string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if s := save(); strings.Contains(s, "berth-ut0") {
		t.Errorf("rules of a network with no container left after the start:\n%s", s)
	}
	if _, err := os.Stat("/sys/class/net/berth-ut0"); !os.IsNotExist(err) {
		t.Errorf("bridge of a network with no container left after the start: %v", err)
	}
}

// TestManager_ForwardDropPolicy runs in a network namespace of its own
// (the test binary re-executed under unshare, so the host's FORWARD
// policy is never touched) whose FORWARD policy is DROP: berth's
// BERTH-FORWARD rules, which replace the firewall plugin's, let a
// container reach another directly and through a published port, and
// without them it cannot.
func TestManager_ForwardDropPolicy(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "unshare")
	testutil.RequireBinary(t, "busybox")
	if os.Getenv("BERTH_TEST_OWN_NETNS") == "" {
		// A mount namespace too, with its own /sys, so /sys/class/net is
		// the new network namespace's.
		cmd := exec.Command("unshare", "-n", "-m", "sh", "-c",
			`mount -t sysfs sysfs /sys && exec "$0" -test.run '^TestManager_ForwardDropPolicy$' -test.v -test.count=1`, os.Args[0])
		cmd.Env = append(os.Environ(), "BERTH_TEST_OWN_NETNS=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in a network namespace of its own:\n%s", out)
		if err != nil || !strings.Contains(string(out), "--- PASS: TestManager_ForwardDropPolicy") {
			t.Fatalf("the test in its own namespace: %v", err)
		}
		return
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		return string(out)
	}
	run("ip", "link", "set", "lo", "up")
	run("iptables", "-P", "FORWARD", "DROP")
	m := newTestManager(t)
	ctx := context.Background()
	c1, err := m.Attach(ctx, Request{Namespace: "default", ID: "c1", Network: BuiltinNetwork})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := m.Attach(ctx, Request{Namespace: "default", ID: "c2", Network: BuiltinNetwork,
		Ports: []PortMapping{{HostPort: 18394, ContainerPort: 80, Protocol: "tcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	// fetch connects from c1 to addr:port, with c2 answering on 80.
	fetch := func(addr, port string) string {
		srv := exec.Command("nsenter", "--net="+c2.NetNS, "busybox", "nc", "-l", "-p", "80", "-e", "echo", "hello")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
		var out []byte
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			out, _ = exec.Command("nsenter", "--net="+c1.NetNS, "busybox", "nc", "-w", "1", addr, port).CombinedOutput()
			if strings.Contains(string(out), "hello") {
				break
			}
		}
		return strings.TrimSpace(string(out))
	}
	if got := fetch(c2.IP(), "80"); got != "hello" {
		t.Errorf("c1 -> c2 directly under FORWARD DROP: %q", got)
	}
	if got := fetch(c2.Gateway, "18394"); got != "hello" {
		t.Errorf("c1 -> c2 through its published port under FORWARD DROP: %q", got)
	}
	// Without berth's chain the policy drops it: the rules are what let
	// the traffic through.
	run("iptables", "-D", "FORWARD", "-j", forwardChain)
	if got := fetch(c2.IP(), "80"); got == "hello" {
		t.Errorf("c1 reached c2 under FORWARD DROP without %s", forwardChain)
	}
	run("iptables", "-I", "FORWARD", "1", "-j", forwardChain)
	for _, id := range []string{"c1", "c2"} {
		if err := m.Detach(ctx, "default", id); err != nil {
			t.Fatal(err)
		}
	}
}
