package main

import (
	"net"
	"os"
)

// sdNotify tells systemd (Type=notify units) about berthd's state: READY=1
// once the API socket accepts, STOPPING=1 when it shuts down. It is a no-op
// when berthd was not started by systemd (no NOTIFY_SOCKET), and a failure
// only costs systemd's view of readiness, so it is not an error.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' { // abstract socket
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}
