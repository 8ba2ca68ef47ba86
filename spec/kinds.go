package spec

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
	Ref        string     `json:"ref"`
	PullPolicy PullPolicy `json:"pullPolicy,omitempty"`
	// Platform is os/arch[/variant]; empty means the host's.
	Platform string `json:"platform,omitempty"`
	// Source is an optional offline source, used before any registry.
	Source      *ImageSource `json:"source,omitempty"`
	Snapshotter string       `json:"snapshotter,omitempty"`
	// Auth points at registry credentials kept outside the manifest.
	Auth *ImageAuth `json:"auth,omitempty"`
}

// ImageAuth names a file on the node in docker's config.json format
// (mode 0600), whose credentials are used for this image's registry before
// berthd's own docker config.
type ImageAuth struct {
	File string `json:"file"`
}

// ImageSource names an OCI image archive (tar) or an OCI layout directory.
// Exactly one is set. Relative paths are relative to the manifest's
// directory (Object.ResolvePath).
type ImageSource struct {
	Archive string `json:"archive,omitempty"`
	Layout  string `json:"layout,omitempty"`
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
	Command        []string    `json:"command,omitempty"`
	Args           []string    `json:"args,omitempty"`
	Env            []EnvVar    `json:"env,omitempty"`
	WorkingDir     string      `json:"workingDir,omitempty"`
	User           string      `json:"user,omitempty"`
	Mounts         []Mount     `json:"mounts,omitempty"`
	Resources      Resources   `json:"resources,omitzero"`
	Network        NetworkMode `json:"network,omitempty"`
	Runtime        string      `json:"runtime,omitempty"`
	ReadOnlyRootfs bool        `json:"readOnlyRootfs,omitempty"`
	Hostname       string      `json:"hostname,omitempty"`
	Terminal       bool        `json:"terminal,omitempty"`
	// Ports are published on the host (bridged networks only).
	Ports []Port `json:"ports,omitempty"`
	// DNS overrides parts of the container's /etc/resolv.conf.
	DNS *DNSConfig `json:"dns,omitempty"`
	// Hosts are extra /etc/hosts entries.
	Hosts []HostAlias `json:"hosts,omitempty"`
}

// Protocols of a published port.
const (
	ProtocolTCP = "tcp"
	ProtocolUDP = "udp"
)

// Port publishes a container port on the host.
type Port struct {
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// DNSConfig is what a container's resolv.conf says instead of the host's.
type DNSConfig struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// HostAlias is one /etc/hosts line.
type HostAlias struct {
	IP        string   `json:"ip"`
	Hostnames []string `json:"hostnames"`
}

// NetworkSpec is the desired state of a Network: a bridge (or macvlan,
// ipvlan) network containers of its namespace join by name.
type NetworkSpec struct {
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway,omitempty"`
	IPRange string `json:"ipRange,omitempty"`
	IPMasq  bool   `json:"ipMasq,omitempty"`
	Isolate bool   `json:"isolate,omitempty"`
	MTU     int    `json:"mtu,omitempty"`
	Driver  string `json:"driver,omitempty"`
	Master  string `json:"master,omitempty"`
}

// Kind implements Spec.
func (NetworkSpec) Kind() Kind { return KindNetwork }
func (NetworkSpec) isSpec()    {}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Mount is a bind mount of a host path or a tmpfs.
type Mount struct {
	Type     MountType `json:"type,omitempty"`
	Source   string    `json:"source,omitempty"`
	Target   string    `json:"target"`
	Options  []string  `json:"options,omitempty"`
	ReadOnly bool      `json:"readOnly,omitempty"`
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
	Container     string        `json:"container"`
	State         TaskState     `json:"state,omitempty"`
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`
	// StopTimeout is how long a stop waits after SIGTERM before SIGKILL.
	StopTimeout Duration `json:"stopTimeout,omitempty"`
}

// Kind implements Spec.
func (TaskSpec) Kind() Kind { return KindTask }
func (TaskSpec) isSpec()    {}
