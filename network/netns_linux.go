package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// createNetNS creates a network namespace with its loopback up and
// bind-mounts it on path (a file it creates). The unshare happens on a
// locked OS thread that is left to die with its goroutine, so no other
// goroutine ever runs in the new namespace. Bringing lo up here, on the
// thread already inside, is what the loopback plugin's exec did.
func createNetNS(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create netns file %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the runtime ends the thread with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		if err := loopbackUp(); err != nil {
			errc <- err
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mount network namespace on %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// removeNetNS unmounts and removes a namespace file; a missing one is fine.
func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// isNetNS reports whether path is a mounted network namespace.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// DialIn dials a TCP address from inside the network namespace at netns
// (a namespace file: a bind mount, or /proc/<pid>/ns/net of a container's
// process). Only the socket's creation and connect run on an OS thread
// moved into that namespace: a socket belongs to the namespace it was made
// in, so the connection is then used from any goroutine. The thread goes
// back to berthd's namespace; one that cannot is left locked, and the
// runtime ends it with its goroutine, so no other goroutine ever runs in
// the container's namespace.
func DialIn(ctx context.Context, netns, addr string) (net.Conn, error) {
	// Resolve here, in berthd's namespace, and dial IP literals only: given
	// a name of both families, net.Dialer races the two on goroutines of
	// their own, whose threads are in berthd's namespace, so a probe of
	// "localhost" reached the host's loopback, not the container's.
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []net.IPAddr
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IPAddr{{IP: ip}}
	} else if ips, err = lookupIPAddr(ctx, host); err != nil {
		return nil, err
	}
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, err, back := dialInLocked(ctx, netns, ips, port)
		if back {
			runtime.UnlockOSThread()
		}
		res <- result{c, err}
	}()
	r := <-res
	return r.c, r.err
}

// lookupIPAddr resolves DialIn's host names (a seam for tests).
var lookupIPAddr = net.DefaultResolver.LookupIPAddr

// dialInLocked runs on a locked thread; back reports whether the thread
// is in its own namespace again (or never left it). It tries ips in turn:
// a dial of one IP literal runs on the calling goroutine, hence thread.
func dialInLocked(ctx context.Context, netns string, ips []net.IPAddr, port string) (c net.Conn, err error, back bool) {
	own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open own network namespace: %w", err), true
	}
	defer unix.Close(own)
	target, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", netns, err), true
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter network namespace %s: %w", netns, err), true
	}
	var d net.Dialer
	err = errors.New("no address")
	for _, ip := range ips {
		if c, err = d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), port)); err == nil || ctx.Err() != nil {
			break
		}
	}
	return c, err, unix.Setns(own, unix.CLONE_NEWNET) == nil
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: set up: %w", err)
	}
	return nil
}
