package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	ctrapi "berth.dev/berth/api/containers/v1"
	"berth.dev/berth/spec"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newContainerCmd) }

// containerFlags are the settings `container create` and `run` share.
//
// They map onto the containers API's Settings one to one; validation of
// values is berthd's (the same rules as a manifest's), and only what the
// CLI alone can know (a flag's syntax) is checked here.
type containerFlags struct {
	env, mounts            []string
	memory, hostname, user string
	workdir                string
	runtime, snapshotter   string
	cpus                   float64
	pids                   int64
	netHost, readOnly, tty bool
	labels                 []string
	lease                  string
	init                   bool
	stopSignal             string
	network                string
	publish                []string
}

func (f *containerFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "mount type=bind|tmpfs,source=…,target=…[,ro] (repeatable)")
	fl.StringVar(&f.memory, "memory", "", "memory limit (64Mi, 1G, bytes)")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPU limit in cores (0.5)")
	fl.Int64Var(&f.pids, "pids", 0, "most processes the container may have")
	fl.BoolVar(&f.netHost, "net-host", false, "use the host's network namespace")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the rootfs read-only")
	fl.StringVar(&f.hostname, "hostname", "", "the container's hostname")
	fl.StringVarP(&f.user, "user", "u", "", "user[:group] to run as (name or id)")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVar(&f.runtime, "runtime", "", "OCI runtime name (runc, crun)")
	fl.StringVar(&f.snapshotter, "snapshotter", "", "snapshotter (default: berthd's)")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a terminal")
	fl.StringArrayVar(&f.labels, "label", nil, "label KEY=VALUE (repeatable)")
	fl.BoolVar(&f.init, "init", false, "run berth-init as PID 1: forwards signals to the program and reaps orphans")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "signal a stop sends first (default: the image's, else SIGTERM)")
	fl.StringVar(&f.network, "network", "", "network: none (default), host, bridge or a Network's name")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO] (bridged networks; repeatable)")
	addLeaseFlag(cmd, &f.lease)
}

// parsePublish reads -p as nerdctl and podman take it:
// [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], or CONTAINERPORT alone
// (published on the same host port).
//
// The port range is checked here only to name the flag in the error;
// berthd checks the mapping again as it checks a manifest's ports.
func parsePublish(s string) (*ctrapi.PortMapping, error) {
	rest, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return nil, fmt.Errorf("-p %s: protocol %q is not tcp or udp", s, proto)
	}
	parts := strings.Split(rest, ":")
	var hostIP, hostPort, ctrPort string
	switch len(parts) {
	case 1:
		hostPort, ctrPort = parts[0], parts[0]
	case 2:
		hostPort, ctrPort = parts[0], parts[1]
	case 3:
		hostIP, hostPort, ctrPort = parts[0], parts[1], parts[2]
	default:
		return nil, fmt.Errorf("-p %s: want [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]", s)
	}
	hp, err1 := strconv.Atoi(hostPort)
	cp, err2 := strconv.Atoi(ctrPort)
	if err1 != nil || err2 != nil || hp < 1 || hp > 65535 || cp < 1 || cp > 65535 {
		return nil, fmt.Errorf("-p %s: ports must be numbers 1..65535", s)
	}
	return &ctrapi.PortMapping{HostIp: hostIP, HostPort: int32(hp), ContainerPort: int32(cp), Protocol: proto}, nil
}

// request builds the create request of container id from image with args.
//
// Labels without "=" get an empty value rather than an error, as docker
// --label does.
func (f *containerFlags) request(ns, image, id string, args []string) (*ctrapi.CreateContainerRequest, error) {
	// Memory is sent in bytes: the API has one unit, and the suffix
	// grammar is the CLI's to accept (docker's and Kubernetes' both).
	mem, err := parseBytes(f.memory)
	if err != nil {
		return nil, err
	}
	s := &ctrapi.Settings{Args: args, Env: f.env, User: f.user, WorkingDir: f.workdir, Cpus: f.cpus, MemoryBytes: mem, Pids: f.pids,
		NetHost: f.netHost, ReadonlyRootfs: f.readOnly, Hostname: f.hostname, Terminal: f.tty, Runtime: f.runtime,
		Init: f.init, StopSignal: f.stopSignal, Network: f.network}
	// --net-host is the older spelling of --network host; both at
	// once is ambiguous, so it is refused rather than one winning.
	if f.network != "" && f.netHost {
		return nil, fmt.Errorf("--net-host and --network %s together: give one", f.network)
	}
	// -p is parsed here only for its syntax; berthd checks the
	// mappings by the manifest's rule (spec.ValidatePorts).
	for _, p := range f.publish {
		pm, err := parsePublish(p)
		if err != nil {
			return nil, err
		}
		s.Ports = append(s.Ports, pm)
	}
	// The stop signal is parsed here for an early, flag-named error; it is
	// sent as written and berthd parses it again with the same function.
	if f.stopSignal != "" {
		if _, err := spec.ParseSignal(f.stopSignal); err != nil {
			return nil, fmt.Errorf("--stop-signal: %w", err)
		}
	}
	for _, m := range f.mounts {
		pm, err := parseMount(m)
		if err != nil {
			return nil, err
		}
		s.Mounts = append(s.Mounts, pm)
	}
	labels := map[string]string{}
	for _, l := range f.labels {
		k, v, _ := strings.Cut(l, "=")
		labels[k] = v
	}
	return &ctrapi.CreateContainerRequest{Namespace: ns, Id: id, Image: image, Snapshotter: f.snapshotter, Settings: s, Labels: labels}, nil
}

// parseMount parses type=bind,source=/a,target=/b[,ro] (src/dst and
// destination are accepted too, as docker's --mount takes them). Every
// other field is passed on as a mount option for berthd to judge with
// oci.ParseMount, the rule a manifest's mounts follow: so size=16Mi (or
// docker's tmpfs-size=) and rw mean here what they mean in a file, and an
// option berthd does not know is refused there, naming it, instead of
// being dropped here.
func parseMount(s string) (*ctrapi.Mount, error) {
	m := &ctrapi.Mount{Type: "bind"}
	for _, kv := range strings.Split(s, ",") {
		k, v, hasValue := strings.Cut(kv, "=")
		switch k {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "dst", "destination":
			m.Target = v
		case "ro", "readonly":
			switch v {
			case "", "true", "1":
				m.Options = append(m.Options, "ro")
			case "false", "0":
				m.Options = append(m.Options, "rw")
			default:
				return nil, fmt.Errorf("mount %q: %s=%s: want true or false", s, k, v)
			}
		case "tmpfs-size":
			m.Options = append(m.Options, "size="+v)
		case "":
			return nil, fmt.Errorf("mount %q: an empty field", s)
		default:
			if hasValue {
				m.Options = append(m.Options, k+"="+v)
			} else {
				m.Options = append(m.Options, k)
			}
		}
	}
	if m.Target == "" {
		return nil, fmt.Errorf("mount %q: no target", s)
	}
	return m, nil
}

// parseBytes parses 64Mi, 1G, 512k or a plain number of bytes.
//
// Both binary (Mi) and decimal (M) suffixes are taken because users copy
// limits from docker (decimal-ish) and from Kubernetes (binary).
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
		{"kb", 1 << 10}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"b", 1}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(num, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("size %q: want a number with an optional unit (64Mi, 1G)", s)
			}
			return int64(n * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (64Mi, 1G)", s)
	}
	return n, nil
}

// containerView is a container as -o json/yaml prints it; settings and
// the OCI spec only for info, as a list of full specs is unreadable.
type containerView struct {
	ID          string            `json:"id"`
	Image       string            `json:"image"`
	ImageDigest string            `json:"imageDigest"`
	Snapshotter string            `json:"snapshotter"`
	SnapshotKey string            `json:"snapshotKey"`
	Runtime     string            `json:"runtime,omitempty"`
	SpecHash    string            `json:"specHash"`
	Labels      map[string]string `json:"labels,omitempty"`
	Settings    *ctrapi.Settings  `json:"settings,omitempty"`
	Spec        json.RawMessage   `json:"spec,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	// Network and Addresses are a bridged container's, as observed.
	Network   string   `json:"network,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

func toContainerView(c *ctrapi.Container, withSpec bool) containerView {
	v := containerView{ID: c.Id, Image: c.Image, ImageDigest: c.ImageDigest, Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey, Runtime: c.Runtime, SpecHash: c.SpecHash, Labels: c.Labels, CreatedAt: c.CreatedAt.AsTime(),
		Network: c.Network, Addresses: c.Addresses}
	if withSpec {
		v.Settings, v.Spec = c.Settings, c.Spec
	}
	return v
}

// newContainerCmd is ctr's container verbs: a container is a record and a
// snapshot, nothing runs until `task start` (or `berth run`, which does
// both).
func newContainerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "container", Aliases: []string{"containers", "c"}, Short: "Manage containers"}
	// client dials per subcommand, so --help and flag errors need no
	// berthd.
	client := func(cmd *cobra.Command) (ctrapi.ContainersService, func(), error) {
		c, err := g.dial(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		return ctrapi.NewContainersClient(c), func() { c.Close() }, nil
	}
	var cf containerFlags
	create := &cobra.Command{
		Use: "create [flags] IMAGE ID [-- CMD...]", Short: "Create a container from an image (its rw snapshot is prepared under key ID)",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := cf.request(g.namespace, args[0], args[1], args[2:])
			if err != nil {
				return err
			}
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			// Under a lease, what the create makes is kept from garbage
			// collection until the lease ends.
			_, err = s.Create(withLease(cmd.Context(), cf.lease), req)
			return err
		},
	}
	cf.add(create)
	var output string
	// ls shows records only (no spec): it must stay fast with hundreds of
	// containers, and info is there for one container's whole story.
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the namespace's containers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.List(cmd.Context(), &ctrapi.ListContainersRequest{Namespace: g.namespace})
			if err != nil {
				return err
			}
			var views []containerView
			for _, c := range resp.Containers {
				views = append(views, toContainerView(c, false))
			}
			return printList(cmd.OutOrStdout(), output, views, []string{"ID", "IMAGE", "RUNTIME", "CREATED"}, func(v containerView) []string {
				return []string{v.ID, v.Image, orDash(v.Runtime), ago(v.CreatedAt)}
			})
		},
	}
	addOutputFlag(ls, &output)
	var infoOut string
	info := &cobra.Command{
		Use: "info ID", Short: "Show a container with its settings and OCI spec", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Get(cmd.Context(), &ctrapi.GetContainerRequest{Namespace: g.namespace, Id: args[0]})
			if err != nil {
				return err
			}
			// info is one record with nested settings: JSON by default,
			// as image inspect.
			if infoOut == "table" {
				infoOut = "json"
			}
			return printObject(cmd.OutOrStdout(), infoOut, toContainerView(resp.Container, true))
		},
	}
	addOutputFlag(info, &infoOut)
	// rm refuses (in berthd) a container whose task still exists: a
	// container is removed after its task, never under it.
	rm := &cobra.Command{
		Use: "rm ID...", Aliases: []string{"delete", "remove"}, Short: "Delete containers and their snapshots", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			return forEach(args, func(id string) error {
				_, err := s.Delete(cmd.Context(), &ctrapi.DeleteContainerRequest{Namespace: g.namespace, Id: id})
				return err
			})
		},
	}
	cmd.AddCommand(create, ls, info, rm, newContainerCommitCmd(g))
	return cmd
}
