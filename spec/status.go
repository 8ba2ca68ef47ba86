package spec

import "time"

// ConditionType names a condition.
type ConditionType string

// The condition types.
const (
	ConditionReady       ConditionType = "Ready"
	ConditionProgressing ConditionType = "Progressing"
	ConditionDegraded    ConditionType = "Degraded"
	// ConditionConflict is set on an object that a second source declares.
	ConditionConflict ConditionType = "Conflict"
)

// ConditionStatus is True, False or Unknown.
type ConditionStatus string

// The condition statuses.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// Condition is one observation about an object, Kubernetes style.
type Condition struct {
	Type               ConditionType   `json:"type"`
	Status             ConditionStatus `json:"status"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
	LastTransitionTime time.Time       `json:"lastTransitionTime,omitzero"`
}

// Status is what was observed of an object. Only the part for its kind
// is set; the kind parts are embedded so their fields appear flat in the
// serialised form, as in `status: {observedGeneration: 2, digest: …}`.
type Status struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	*ImageStatus
	*ContainerStatus
	*TaskStatus
	*NetworkStatus
}

// IsZero reports whether nothing was observed.
func (s Status) IsZero() bool {
	return s.ObservedGeneration == 0 && len(s.Conditions) == 0 &&
		s.ImageStatus == nil && s.ContainerStatus == nil && s.TaskStatus == nil && s.NetworkStatus == nil
}

// Condition returns the condition of type t, if any.
func (s Status) Condition(t ConditionType) (Condition, bool) {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c, true
		}
	}
	return Condition{}, false
}

// ImageStatus is what was observed of an Image.
type ImageStatus struct {
	// Digest is the manifest digest the ref resolved to.
	Digest   string    `json:"digest,omitempty"`
	Size     int64     `json:"size,omitempty"`
	Unpacked *Unpacked `json:"unpacked,omitempty"`
	// SkippedDevices counts the block and character device nodes the
	// image's layers held and berth did not create (unpack.allowDevices).
	SkippedDevices int `json:"skippedDevices,omitempty"`
	// DroppedXattrs counts the extended attributes (trusted.*,
	// security.selinux) left out of the unpacked layers.
	DroppedXattrs int `json:"droppedXattrs,omitempty"`
	// Progress is where a first pull stands, while it runs.
	Progress *PullProgress `json:"progress,omitempty"`
	// Update is the automatic update's state (spec.updatePolicy).
	Update *ImageUpdateStatus `json:"update,omitempty"`
}

// ImageUpdateStatus is where an Image's automatic update stands.
type ImageUpdateStatus struct {
	// LastCheck is when the registry was last asked what the tag names.
	LastCheck time.Time `json:"lastCheck,omitzero"`
	// Previous and Target are the digests of an update in progress: the
	// Containers in Moved are on Target, the others stay on Previous.
	Previous string   `json:"previous,omitempty"`
	Target   string   `json:"target,omitempty"`
	Moved    []string `json:"moved,omitempty"`
	// MovingSince is when the last Container of Moved was moved.
	MovingSince time.Time `json:"movingSince,omitzero"`
	// Rejected is a digest that was rolled back: it is not tried again
	// while the tag names it. RejectedReason says why it was.
	Rejected       string `json:"rejected,omitempty"`
	RejectedReason string `json:"rejectedReason,omitempty"`
	// Updates and Rollbacks count the updates done and rolled back.
	Updates   int `json:"updates,omitempty"`
	Rollbacks int `json:"rollbacks,omitempty"`
}

// PullProgress is a running pull, blob by blob.
type PullProgress struct {
	Layers []LayerProgress `json:"layers,omitempty"`
	// Fetched is the bytes downloaded so far.
	Fetched int64 `json:"fetched"`
	// Waiting says why the pull waits (a 429's Retry-After) and how long.
	Waiting string `json:"waiting,omitempty"`
}

// LayerProgress is one blob of a running pull.
type LayerProgress struct {
	Digest string `json:"digest"`
	// Status is downloading, done, unpacking, unpacked or retrying.
	Status string `json:"status"`
	Offset int64  `json:"offset"`
	Total  int64  `json:"total"`
	// Rate is bytes per second.
	Rate int64 `json:"rate,omitempty"`
}

// Unpacked says where an image's layers are unpacked.
type Unpacked struct {
	Snapshotter string `json:"snapshotter"`
	ChainID     string `json:"chainID"`
}

// ContainerStatus is what was observed of a Container.
type ContainerStatus struct {
	SnapshotKey string `json:"snapshotKey,omitempty"`
	// SpecHash is the Hash of the spec the container was created from.
	SpecHash    string `json:"specHash,omitempty"`
	ImageDigest string `json:"imageDigest,omitempty"`
	// Network is the network the container is attached to (bridged
	// containers only), Addresses its addresses there (CIDR) and Ports
	// what it publishes on the host, as observed on the node.
	Network   string   `json:"network,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	Ports     []Port   `json:"ports,omitempty"`
}

// NetworkStatus is what was observed of a Network.
type NetworkStatus struct {
	// Bridge is the Linux bridge of a bridge network; CNINetwork the name
	// of its conflist in berthd's CNI configuration directory.
	Bridge     string `json:"bridge,omitempty"`
	CNINetwork string `json:"cniNetwork,omitempty"`
	// UsedBy lists the containers ("namespace/id") attached to it.
	UsedBy []string `json:"usedBy,omitempty"`
}

// TaskStatus is what was observed of a Task.
type TaskStatus struct {
	Pid      int       `json:"pid,omitempty"`
	State    TaskPhase `json:"state,omitempty"`
	ExitCode int       `json:"exitCode,omitempty"`
	// OOMKilled says the kernel killed the last run (the one ExitCode is
	// of) for exceeding the container's memory limit.
	OOMKilled    bool `json:"oomKilled,omitempty"`
	RestartCount int  `json:"restartCount,omitempty"`
	// BackoffRestarts counts the restarts since the task last ran for 10 s
	// without exiting, and NextStartAt is when the restart backoff lets it
	// start again: kept in the status, not only in berthd's memory, so a
	// restarted berthd goes on backing off a crash-looping task instead of
	// starting it at once and from a 1 s delay again.
	BackoffRestarts int       `json:"backoffRestarts,omitempty"`
	NextStartAt     time.Time `json:"nextStartAt,omitzero"`
	StartedAt       time.Time `json:"startedAt,omitzero"`
	FinishedAt      time.Time `json:"finishedAt,omitzero"`
	LastError       string    `json:"lastError,omitempty"`
	// ContainerCreatedAt is when the container this task last ran in was
	// created: a task found gone whose container is newer was stopped by
	// the container's recreation, not by a crash (a fresh start, no
	// restart counted), and a restarted berthd can still tell.
	ContainerCreatedAt time.Time `json:"containerCreatedAt,omitzero"`
	// Unhealthy is why a liveness or startup probe last stopped the task
	// (the probe and its last output), kept across the restart that
	// followed; UnhealthyAt is when.
	Unhealthy   string    `json:"unhealthy,omitempty"`
	UnhealthyAt time.Time `json:"unhealthyAt,omitzero"`
	// StartedAfter are the Tasks (dependsOn) this one was started after:
	// a teardown of those waits for this one to stop first, when it goes
	// too, even after its manifest is gone.
	StartedAfter []string `json:"startedAfter,omitempty"`
}
