package spec

import (
	"maps"
	"slices"
	"strings"
)

// Defaults that Default fills in, and the built-in NodeDefaults.
const (
	DefaultSnapshotter = "overlayfs"
	DefaultRuntime     = "runc"
	DefaultNetwork     = NetworkNone
	DefaultStopTimeout = Duration("10s")
)

// NodeDefaults are the defaults a node's configuration chooses: berthd's
// snapshotter and runtime. An object that names none is the node's to
// decide, so Default leaves these fields empty and the node's store
// resolves them, once, with Resolve: the same value then reaches the
// controllers, the hash and berth diff, and `berth run` gets the same
// defaults from the node.
type NodeDefaults struct {
	Snapshotter string
	Runtime     string
}

// BuiltinDefaults are the NodeDefaults of a node configured with none.
var BuiltinDefaults = NodeDefaults{Snapshotter: DefaultSnapshotter, Runtime: DefaultRuntime}

// Resolve returns Default(o) with d (its empty fields the built-in ones)
// filled into what o leaves to the node.
//
// Why the hash of a manifest in force does not change: before NodeDefaults
// existed, Default wrote overlayfs and runc into every object, so every
// stored hash covers those values. A node configured as before resolves
// to the same values, so the same hash, and nothing is recreated. A node
// configured otherwise now resolves to its configured values: that is a
// change of desired state, and the containers that relied on the default
// are recreated with it, as if their manifest had named it.
func (d NodeDefaults) Resolve(o Object) Object {
	o = Default(o)
	d.Snapshotter = cmpOr(d.Snapshotter, DefaultSnapshotter)
	d.Runtime = cmpOr(d.Runtime, DefaultRuntime)
	switch s := o.Spec.(type) {
	case ImageSpec:
		s.Snapshotter = cmpOr(s.Snapshotter, d.Snapshotter)
		o.Spec = s
	case ContainerSpec:
		s.Runtime = cmpOr(s.Runtime, d.Runtime)
		o.Spec = s
	}
	return o
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Default returns a copy of o with every unset field that has a default
// set to it (see the package documentation for the list), but for those
// NodeDefaults resolves. o is not changed, and the copy shares no slices
// or maps with it.
func Default(o Object) Object {
	o = o.DeepCopy()
	if o.APIVersion == "" {
		o.APIVersion = APIVersion
	}
	if o.Metadata.Namespace == "" {
		o.Metadata.Namespace = DefaultNamespace
	}
	switch s := o.Spec.(type) {
	case ImageSpec:
		if s.PullPolicy == "" {
			s.PullPolicy = defaultPullPolicy(s.Ref)
		}
		o.Spec = s
	case ContainerSpec:
		if s.Network == "" {
			s.Network = DefaultNetwork
		}
		for i := range s.Ports {
			if s.Ports[i].Protocol == "" {
				s.Ports[i].Protocol = ProtocolTCP
			}
			if s.Ports[i].HostPort == 0 {
				s.Ports[i].HostPort = s.Ports[i].ContainerPort
			}
		}
		s.LivenessProbe = defaultProbe(s.LivenessProbe)
		s.ReadinessProbe = defaultProbe(s.ReadinessProbe)
		s.StartupProbe = defaultProbe(s.StartupProbe)
		for i := range s.Mounts {
			if s.Mounts[i].Type == "" {
				s.Mounts[i].Type = MountTmpfs
				if s.Mounts[i].Source != "" {
					s.Mounts[i].Type = MountBind
				}
			}
		}
		o.Spec = s
	case NetworkSpec:
		if s.Driver == "" {
			s.Driver = "bridge"
		}
		o.Spec = s
	case TaskSpec:
		if s.State == "" {
			s.State = TaskRunning
		}
		if s.RestartPolicy == "" {
			s.RestartPolicy = RestartAlways
		}
		if s.StopTimeout == "" {
			s.StopTimeout = DefaultStopTimeout
		}
		s.LivenessProbe = defaultProbe(s.LivenessProbe)
		s.ReadinessProbe = defaultProbe(s.ReadinessProbe)
		s.StartupProbe = defaultProbe(s.StartupProbe)
		for i := range s.DependsOn {
			if s.DependsOn[i].Condition == "" {
				s.DependsOn[i].Condition = DependOnReady
			}
		}
		o.Spec = s
	}
	return o
}

// defaultPullPolicy follows kubectl: Always for an untagged ref or the tag
// latest, IfNotPresent otherwise (and always for a digest).
func defaultPullPolicy(ref string) PullPolicy {
	if strings.Contains(ref, "@") {
		return PullIfNotPresent
	}
	tag := ""
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		tag = ref[i+1:]
	}
	if tag == "" || tag == "latest" {
		return PullAlways
	}
	return PullIfNotPresent
}

// DeepCopy returns a copy of o that shares no slices, maps or pointers.
func (o Object) DeepCopy() Object {
	o.Metadata.Labels = maps.Clone(o.Metadata.Labels)
	o.Metadata.Annotations = maps.Clone(o.Metadata.Annotations)
	switch s := o.Spec.(type) {
	case ImageSpec:
		if s.Source != nil {
			src := *s.Source
			s.Source = &src
		}
		if s.Auth != nil {
			a := *s.Auth
			s.Auth = &a
		}
		o.Spec = s
	case ContainerSpec:
		s.Command = slices.Clone(s.Command)
		s.Args = slices.Clone(s.Args)
		s.Env = slices.Clone(s.Env)
		s.Mounts = slices.Clone(s.Mounts)
		for i := range s.Mounts {
			s.Mounts[i].Options = slices.Clone(s.Mounts[i].Options)
		}
		s.Ports = slices.Clone(s.Ports)
		if s.DNS != nil {
			d := DNSConfig{Servers: slices.Clone(s.DNS.Servers), Searches: slices.Clone(s.DNS.Searches), Options: slices.Clone(s.DNS.Options)}
			s.DNS = &d
		}
		s.Hosts = slices.Clone(s.Hosts)
		for i := range s.Hosts {
			s.Hosts[i].Hostnames = slices.Clone(s.Hosts[i].Hostnames)
		}
		s.LivenessProbe, s.ReadinessProbe, s.StartupProbe = s.LivenessProbe.deepCopy(), s.ReadinessProbe.deepCopy(), s.StartupProbe.deepCopy()
		o.Spec = s
	case TaskSpec:
		s.LivenessProbe, s.ReadinessProbe, s.StartupProbe = s.LivenessProbe.deepCopy(), s.ReadinessProbe.deepCopy(), s.StartupProbe.deepCopy()
		s.DependsOn = slices.Clone(s.DependsOn)
		o.Spec = s
	}
	o.Status = o.Status.DeepCopy()
	return o
}

// DeepCopy returns a copy of s that shares nothing with it.
func (s Status) DeepCopy() Status {
	s.Conditions = slices.Clone(s.Conditions)
	if s.ImageStatus != nil {
		is := *s.ImageStatus
		if is.Unpacked != nil {
			u := *is.Unpacked
			is.Unpacked = &u
		}
		if is.Progress != nil {
			p := *is.Progress
			p.Layers = slices.Clone(p.Layers)
			is.Progress = &p
		}
		s.ImageStatus = &is
	}
	if s.ContainerStatus != nil {
		cs := *s.ContainerStatus
		cs.Addresses, cs.Ports = slices.Clone(cs.Addresses), slices.Clone(cs.Ports)
		s.ContainerStatus = &cs
	}
	if s.TaskStatus != nil {
		ts := *s.TaskStatus
		ts.StartedAfter = slices.Clone(ts.StartedAfter)
		s.TaskStatus = &ts
	}
	if s.NetworkStatus != nil {
		ns := *s.NetworkStatus
		ns.UsedBy = slices.Clone(ns.UsedBy)
		s.NetworkStatus = &ns
	}
	return s
}
