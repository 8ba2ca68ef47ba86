// Command berth-pause is the process of a pod's sandbox when the
// configured sandbox image is not on the node: it holds the pod's
// namespaces open, reaps the orphans that land on it (it is PID 1 of a
// shared PID namespace), and exits 0 on SIGTERM or SIGINT. It is built
// static (CGO_ENABLED=0) and packaged as an image by berthd itself, so an
// offline node runs pods without a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
