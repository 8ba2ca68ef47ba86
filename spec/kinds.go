package spec

import "time"

// PullPolicy says when an Image is fetched from its registry.
type PullPolicy string

// The pull policies.
const (
	PullAlways       PullPolicy = "Always"
	PullIfNotPresent PullPolicy = "IfNotPresent"
	PullNever        PullPolicy = "Never"
)

// ImageSpec is the desired state of an Image.
type ImageSpec struct {
	// Ref is a reference with a tag or a digest.
	Ref string `json:"ref"`
	// PullPolicy says when the image is fetched: Always (every reconcile
	// checks the registry for a new digest), IfNotPresent, or Never (only
	// the source or what the node already holds).
	PullPolicy PullPolicy `json:"pullPolicy,omitempty"`
	// Platform is os/arch[/variant]; empty means the host's.
	Platform string `json:"platform,omitempty"`
	// Source is an optional offline source, used before any registry.
	Source *ImageSource `json:"source,omitempty"`
	// Snapshotter unpacks the image: overlayfs, native (or btrfs where the
	// node has it). Empty: berthd's configured default.
	Snapshotter string `json:"snapshotter,omitempty"`
	// Auth points at registry credentials kept outside the manifest.
	Auth *ImageAuth `json:"auth,omitempty"`
	// UpdatePolicy follows the ref's tag to new digests: each new digest
	// is pulled fully, the Containers using the image are recreated on it
	// one at a time, and if one does not become Ready the previous digest
	// is restored and the new one is not tried again until the tag moves.
	UpdatePolicy *UpdatePolicy `json:"updatePolicy,omitempty"`
}

// UpdateMode says what an Image's updatePolicy follows.
type UpdateMode string

// The update modes.
const (
	// UpdateDigest follows the tag: a new digest behind it is an update.
	UpdateDigest UpdateMode = "Digest"
)

// Update policy defaults.
const (
	DefaultUpdateInterval = Duration("6h")
	DefaultUpdateTimeout  = Duration("60s")
	// MinUpdateInterval keeps a registry from being asked in a loop.
	MinUpdateInterval = time.Second
)

// UpdatePolicy is an Image's automatic update.
type UpdatePolicy struct {
	// Mode is Digest: follow the tag of spec.ref to new digests.
	Mode UpdateMode `json:"mode"`
	// Interval is how often the registry is asked what the tag names
	// (at least 1s).
	Interval Duration `json:"interval,omitempty"`
	// Timeout is how long each recreated Container (and its Task) may take
	// to become Ready on the new digest before the update is rolled back.
	Timeout Duration `json:"timeout,omitempty"`
}

// IntervalValue is the policy's interval, defaulted.
func (p UpdatePolicy) IntervalValue() time.Duration {
	d, err := p.Interval.Value()
	if err != nil || p.Interval == "" {
		d, _ = DefaultUpdateInterval.Value()
	}
	return max(d, MinUpdateInterval)
}

// TimeoutValue is the policy's timeout, defaulted.
func (p UpdatePolicy) TimeoutValue() time.Duration {
	d, err := p.Timeout.Value()
	if err != nil || p.Timeout == "" || d <= 0 {
		d, _ = DefaultUpdateTimeout.Value()
	}
	return d
}

// ImageAuth names a file on the node in docker's config.json format
// (mode 0600), whose credentials are used for this image's registry before
// berthd's own docker config.
type ImageAuth struct {
	// File is an absolute path on the node (0600, owned by root).
	File string `json:"file"`
}

// ImageSource names an OCI image archive (tar) or an OCI layout directory.
// Exactly one is set. Relative paths are relative to the manifest's
// directory (Object.ResolvePath).
type ImageSource struct {
	// Archive is an OCI image archive (a tar, as `berth image export` writes).
	Archive string `json:"archive,omitempty"`
	// Layout is an OCI image layout directory.
	Layout string `json:"layout,omitempty"`
}

// Kind implements Spec.
func (ImageSpec) Kind() Kind { return KindImage }
func (ImageSpec) isSpec()    {}

// NetworkMode is a container's network.
type NetworkMode string

// The network modes; any other value names a Network of the container's
// namespace (or a conflist in berthd's CNI configuration directory).
const (
	NetworkHost NetworkMode = "host"
	NetworkNone NetworkMode = "none"
	// NetworkBridge is the built-in network every namespace has.
	NetworkBridge NetworkMode = "bridge"
)

// Bridged reports whether the mode puts the container on a network of its
// own namespace (the built-in bridge or a named one).
func (m NetworkMode) Bridged() bool { return m != NetworkHost && m != NetworkNone && m != "" }

// MountType is the type of a mount.
type MountType string

// The mount types.
const (
	MountBind  MountType = "bind"
	MountTmpfs MountType = "tmpfs"
)

// ContainerSpec is the desired state of a Container.
type ContainerSpec struct {
	// Image is the name of an Image object in the same namespace.
	Image string `json:"image"`
	// Command replaces the image's entrypoint; Args its cmd.
	Command []string `json:"command,omitempty"`
	// Args replaces the image's cmd.
	Args []string `json:"args,omitempty"`
	// Env is added to the image's environment (a name set twice: the last wins).
	Env []EnvVar `json:"env,omitempty"`
	// WorkingDir replaces the image's working directory.
	WorkingDir string `json:"workingDir,omitempty"`
	// User is uid[:gid] or a name from the image's /etc/passwd; empty: the image's user.
	User string `json:"user,omitempty"`
	// Mounts are bind mounts of host paths and tmpfs mounts.
	Mounts []Mount `json:"mounts,omitempty"`
	// Resources are cgroup limits.
	Resources Resources `json:"resources,omitzero"`
	// Network is host, none, bridge (the built-in network) or a Network's name.
	Network NetworkMode `json:"network,omitempty"`
	// Runtime is the OCI runtime (runc; crun where configured). Empty:
	// berthd's configured default.
	Runtime string `json:"runtime,omitempty"`
	// ReadOnlyRootfs mounts the image's filesystem read-only.
	ReadOnlyRootfs bool `json:"readOnlyRootfs,omitempty"`
	// Hostname is the container's host name (default: its name).
	Hostname string `json:"hostname,omitempty"`
	// Terminal gives the task a pseudo-terminal instead of pipes.
	Terminal bool `json:"terminal,omitempty"`
	// Init runs berth's small init as PID 1, with the program as its
	// child: it forwards signals and reaps orphans, so a program that
	// ignores SIGTERM as PID 1 (busybox httpd) still stops at once.
	Init bool `json:"init,omitempty"`
	// StopSignal is the signal a stop sends first (SIGTERM, TERM or 15);
	// SIGKILL follows after the Task's stopTimeout.
	StopSignal string `json:"stopSignal,omitempty"`
	// Ports are published on the host (bridged networks only).
	Ports []Port `json:"ports,omitempty"`
	// DNS overrides parts of the container's /etc/resolv.conf.
	DNS *DNSConfig `json:"dns,omitempty"`
	// Hosts are extra /etc/hosts entries.
	Hosts []HostAlias `json:"hosts,omitempty"`
	// LivenessProbe restarts the container's task when it fails (a Task's
	// own livenessProbe replaces it). Changing a probe restarts the probes,
	// not the container.
	LivenessProbe *Probe `json:"livenessProbe,omitempty"`
	// ReadinessProbe decides whether the container's task is Ready (a
	// Task's own readinessProbe replaces it).
	ReadinessProbe *Probe `json:"readinessProbe,omitempty"`
	// StartupProbe holds the other probes off until it passes once (a
	// Task's own startupProbe replaces it).
	StartupProbe *Probe `json:"startupProbe,omitempty"`
}

// Protocols of a published port.
const (
	ProtocolTCP = "tcp"
	ProtocolUDP = "udp"
)

// Port publishes a container port on the host.
type Port struct {
	// ContainerPort is the port the program listens on inside the container.
	ContainerPort int `json:"containerPort"`
	// HostPort is the port on the host (default: containerPort).
	HostPort int `json:"hostPort,omitempty"`
	// Protocol is tcp or udp.
	Protocol string `json:"protocol,omitempty"`
	// HostIP is the host address to publish on (default: every address,
	// 127.0.0.1 included).
	HostIP string `json:"hostIP,omitempty"`
}

// DNSConfig is what a container's resolv.conf says instead of the host's.
type DNSConfig struct {
	// Servers are nameserver addresses.
	Servers []string `json:"servers,omitempty"`
	// Searches are search domains.
	Searches []string `json:"searches,omitempty"`
	// Options are resolver options (ndots:2, edns0).
	Options []string `json:"options,omitempty"`
}

// HostAlias is one /etc/hosts line.
type HostAlias struct {
	// IP is the address the names resolve to.
	IP string `json:"ip"`
	// Hostnames are the names.
	Hostnames []string `json:"hostnames"`
}

// NetworkSpec is the desired state of a Network: a bridge (or macvlan,
// ipvlan) network containers of its namespace join by name.
type NetworkSpec struct {
	// Subnet is the network's IPv4 CIDR (10.89.1.0/24).
	Subnet string `json:"subnet"`
	// Gateway is the bridge's address (default: the subnet's first host).
	Gateway string `json:"gateway,omitempty"`
	// IPRange is the part of the subnet containers get addresses from.
	IPRange string `json:"ipRange,omitempty"`
	// IPMasq masquerades traffic leaving the network.
	IPMasq bool `json:"ipMasq,omitempty"`
	// Isolate drops traffic between this network and the node's other networks.
	Isolate bool `json:"isolate,omitempty"`
	// MTU of the bridge and the containers' interfaces (default: the host's).
	MTU int `json:"mtu,omitempty"`
	// Driver is bridge, macvlan or ipvlan.
	Driver string `json:"driver,omitempty"`
	// Master is the host interface of a macvlan or ipvlan network.
	Master string `json:"master,omitempty"`
}

// Kind implements Spec.
func (NetworkSpec) Kind() Kind { return KindNetwork }
func (NetworkSpec) isSpec()    {}

// EnvVar is one environment variable.
type EnvVar struct {
	// Name of the variable.
	Name string `json:"name"`
	// Value of the variable.
	Value string `json:"value"`
}

// Mount is a bind mount of a host path or a tmpfs.
type Mount struct {
	// Type is bind or tmpfs (default: bind with a source, tmpfs without).
	Type MountType `json:"type,omitempty"`
	// Source is the host path of a bind mount (relative: to the manifest's directory).
	Source string `json:"source,omitempty"`
	// Target is the absolute path inside the container.
	Target string `json:"target"`
	// Options are mount options (ro, rw, nosuid, size=64m for tmpfs, ...).
	Options []string `json:"options,omitempty"`
	// ReadOnly mounts it read-only (as the option ro).
	ReadOnly bool `json:"readOnly,omitempty"`
}

// Resources are a container's limits. Zero values mean no limit.
type Resources struct {
	// CPU in cores: "0.5", "500m", "2".
	CPU Quantity `json:"cpu,omitempty"`
	// Memory in bytes: "64Mi", "1G", "1048576".
	Memory Quantity `json:"memory,omitempty"`
	// Pids is the maximum number of processes.
	Pids int64 `json:"pids,omitempty"`
}

// Kind implements Spec.
func (ContainerSpec) Kind() Kind { return KindContainer }
func (ContainerSpec) isSpec()    {}

// TaskState is the desired state of a task.
type TaskState string

// The task states.
const (
	TaskRunning TaskState = "Running"
	TaskStopped TaskState = "Stopped"
	TaskPaused  TaskState = "Paused"
)

// RestartPolicy says when an exited task is started again.
type RestartPolicy string

// The restart policies.
const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// TaskSpec is the desired state of a Task: the running process of a
// Container.
type TaskSpec struct {
	// Container is the name of a Container object in the same namespace.
	Container string `json:"container"`
	// State is what the task should be: Running, Stopped or Paused.
	State TaskState `json:"state,omitempty"`
	// RestartPolicy says when an exited task is started again (with
	// capped exponential backoff): Always, OnFailure or Never.
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`
	// StopTimeout is how long a stop waits after SIGTERM before SIGKILL.
	StopTimeout Duration `json:"stopTimeout,omitempty"`
	// LivenessProbe restarts the task when it fails failureThreshold times
	// in a row, under the restart policy and its backoff (reason Unhealthy).
	LivenessProbe *Probe `json:"livenessProbe,omitempty"`
	// ReadinessProbe decides the Task's Ready condition while it runs.
	ReadinessProbe *Probe `json:"readinessProbe,omitempty"`
	// StartupProbe holds the liveness and readiness probes off until it
	// passes once; failing failureThreshold times restarts the task.
	StartupProbe *Probe `json:"startupProbe,omitempty"`
	// DependsOn names Tasks of the same namespace that must be Ready
	// before this one starts; on delete this one stops before them.
	DependsOn []Dependency `json:"dependsOn,omitempty"`
}

// Dependency is one Task another waits for.
type Dependency struct {
	// Task is the name of a Task in the same namespace.
	Task string `json:"task"`
	// Condition is what the Task must be: Ready.
	Condition DependencyCondition `json:"condition,omitempty"`
}

// DependencyCondition is what a dependsOn waits for.
type DependencyCondition string

// The conditions a Task may wait for.
const (
	// DependOnReady waits until the Task's Ready condition is True.
	DependOnReady DependencyCondition = "Ready"
)

// Kind implements Spec.
func (TaskSpec) Kind() Kind { return KindTask }
func (TaskSpec) isSpec()    {}
