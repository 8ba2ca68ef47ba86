package bundle

// Files in a bundle directory, <state>/<namespace>/<id>/. berthd writes
// config.json and mounts rootfs/; the shim writes the rest.
const (
	ConfigName = "config.json" // the OCI runtime spec (berthd)
	SocketName = "shim.sock"   // the ttrpc socket, 0600
	PidName    = "shim.pid"    // the shim's pid, written once it serves
	LogName    = "shim.log"    // the shim's own log (its stderr)
	ExitName   = "exit.json"   // the init process's exit, written before it is reported
	RuncLog    = "runc.log"    // the runtime's error log
)
