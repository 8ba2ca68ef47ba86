// Package network gives containers their own network namespace on a
// bridge, through CNI plugins driven by libcni: it creates the namespace
// (a file bind-mounted under the state directory, so it outlives a berthd
// crash and is found again), runs the network's conflist (ADD, CHECK, DEL),
// writes the container's /etc/hosts, /etc/resolv.conf and /etc/hostname,
// and generates the conflists of declared Networks.
//
// On disk, under the state directory's .network/ (tmpfs: gone at reboot,
// as the namespaces are):
//
//	netns/<ns>.<id>                the namespace, a bind mount of nsfs
//	containers/<ns>.<id>/record.json  the attachment: request, phase, result
//	containers/<ns>.<id>/{hosts,resolv.conf,hostname}  bind-mounted into the container
//
// and under the root (persistent): cni/cache (libcni's results, which make
// a DEL after a reboot possible) and cni/networks (host-local's leases).
//
// An attachment's record is written before anything is created
// ("attaching"), and marked "attached" only once every plugin succeeded; a
// detach marks it "detaching" first. Recover, at start, detaches what a
// crash left half done: CNI DEL is idempotent, so it is simply run again,
// and a later Attach retries.
//
// Nothing below node imports this package; node and, later, cri use it.
package network
