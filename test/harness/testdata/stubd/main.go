// Command stubd stands in for berthd in the harness's own tests: it takes
// berthd's flags, serves a line protocol on the unix socket (0600), logs to
// stderr and exits 0 on SIGTERM. Copied to a file named berth-shim it acts
// as a shim that sleeps until killed.
//
// Environment: STUBD_TERM_EXIT=N exits N on SIGTERM; STUBD_IGNORE_TERM=1
// ignores SIGTERM; STUBD_FAIL_START=1 exits 1 before listening;
// STUBD_METRICS_BUSY_ONCE=FILE fails as if the metrics port were taken
// unless FILE exists, and creates it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if strings.Contains(filepath.Base(os.Args[0]), "berth-shim") {
		for { // a shim: live until killed (select{} would be a deadlock panic)
			time.Sleep(time.Hour)
		}
	}
	if len(os.Args) == 3 && os.Args[1] == "config" && os.Args[2] == "default" {
		fmt.Println("root: /var/lib/berth")
		return
	}
	root := flag.String("root", "", "")
	state := flag.String("state", "", "")
	address := flag.String("address", "", "")
	flag.String("config", "", "")
	flag.String("manifests", "", "")
	metrics := flag.String("metrics-address", "", "")
	flag.String("log-level", "info", "")
	flag.String("cni-conf-dir", "", "")
	flag.String("cni-bridge", "", "")
	flag.String("cni-subnet", "", "")
	flag.String("cri-address", "", "")
	flag.Parse()
	if f := os.Getenv("STUBD_METRICS_BUSY_ONCE"); f != "" {
		if _, err := os.Stat(f); err != nil {
			os.WriteFile(f, nil, 0o644)
			fatal(fmt.Errorf("listen tcp %s: bind: address already in use", *metrics))
		}
	}
	if os.Getenv("STUBD_FAIL_START") == "1" {
		fmt.Fprintln(os.Stderr, "stubd: failing on purpose")
		os.Exit(1)
	}
	for _, d := range []string{*root, *state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			fatal(err)
		}
	}
	// The handler is in place before the socket exists: the harness
	// counts the daemon started once it can connect, and may stop it at
	// once (a SIGTERM before Notify would kill the stub by default).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	_ = os.Remove(*address) // stale after a kill -9
	l, err := net.Listen("unix", *address)
	if err != nil {
		fatal(err)
	}
	if err := os.Chmod(*address, 0o600); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "stubd: ready pid=%d args=%s\n", os.Getpid(), strings.Join(os.Args[1:], " "))

	go func() {
		for range sigs {
			if os.Getenv("STUBD_IGNORE_TERM") == "1" {
				fmt.Fprintln(os.Stderr, "stubd: ignoring SIGTERM")
				continue
			}
			l.Close()
			fmt.Fprintln(os.Stderr, "stubd: stopping")
			code, _ := strconv.Atoi(os.Getenv("STUBD_TERM_EXIT"))
			os.Exit(code)
		}
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			select {} // closed by the signal handler, which exits
		}
		go serve(c, *root, *state)
	}
}

// serve answers one request line with one reply line; replies starting
// with "ERR" make stubcli exit 2.
func serve(c net.Conn, root, state string) {
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	fmt.Fprintln(c, handle(strings.TrimSpace(line), root, state))
}

func handle(req, root, state string) string {
	switch {
	case req == "fail":
		return "ERR failing on purpose"
	case req == "spawn-shim":
		self, _ := os.Executable()
		cmd := exec.Command(filepath.Join(filepath.Dir(self), "berth-shim"), "--state", state, "--id", "c1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return "ERR " + err.Error()
		}
		go cmd.Wait()
		return strconv.Itoa(cmd.Process.Pid)
	case req == "mount":
		dir := filepath.Join(root, "mnt")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "ERR " + err.Error()
		}
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			return "ERR " + err.Error()
		}
		inner := filepath.Join(dir, "inner")
		_ = os.Mkdir(inner, 0o700)
		if err := syscall.Mount("tmpfs", inner, "tmpfs", 0, "size=1m"); err != nil {
			return "ERR " + err.Error()
		}
		return dir
	default:
		return "args: " + req
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "stubd:", err)
	os.Exit(1)
}
