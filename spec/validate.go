package spec

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Limits that Validate enforces.
const (
	MaxArgsEnvBytes   = 128 << 10 // command + args + env, like a small ARG_MAX
	MaxEnv            = 1024
	MaxMounts         = 256
	MaxAnnotations    = 256 << 10
	MaxStopTimeout    = time.Hour
	maxLabelValue     = 63
	maxQualifiedName  = 63
	maxDNSSubdomain   = 253
	maxReferenceBytes = 512
)

var (
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	qualifiedRE    = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValueRE   = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	platformRE     = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)
	runtimeRE      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$`)
	userPartRE     = `([0-9]+|[a-z_][a-z0-9_-]*\$?)`
	userRE         = regexp.MustCompile(`^` + userPartRE + `(:` + userPartRE + `)?$`)
	// referenceRE is the distribution reference grammar, with digests held
	// to a strict hex grammar.
	referenceRE = regexp.MustCompile(`^` +
		`(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?/)?` +
		`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
		`(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?` +
		`(?:@(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}))?$`)
)

// validator collects the errors of one object.
type validator struct {
	o    Object
	name string
	errs ErrorList
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Origin: v.o.Origin, Object: v.name, Field: field, Detail: fmt.Sprintf(format, args...)})
}

// Validate checks o, which should be defaulted, and returns an ErrorList
// of every problem, or nil.
func Validate(o Object) error {
	k := o.Key()
	if k.Namespace == "" {
		k.Namespace = DefaultNamespace
	}
	v := &validator{o: o, name: k.String()}
	if k.Name == "" || k.Kind == "" {
		v.name = ""
	}
	if o.APIVersion != APIVersion {
		v.add("apiVersion", "%q is not %s", o.APIVersion, APIVersion)
	}
	v.metadata(o.Metadata)
	if o.Spec == nil || o.Spec.Kind() != o.Kind {
		v.add("kind", "%q is not one of Network, Image, Container, Task", string(o.Kind))
		return v.errs.orNil()
	}
	switch s := o.Spec.(type) {
	case ImageSpec:
		v.image(s)
	case ContainerSpec:
		v.container(s)
	case TaskSpec:
		v.task(s)
	case NetworkSpec:
		v.network(s)
	}
	return v.errs.orNil()
}

func (v *validator) dnsLabel(field, s string) {
	switch {
	case s == "":
		v.add(field, "missing")
	case !IsDNSLabel(s):
		v.add(field, "%q is not a DNS-1123 label (lower case letters, digits and '-', at most 63)", truncate(s, 80))
	}
}

func (v *validator) metadata(m Metadata) {
	v.dnsLabel("metadata.name", m.Name)
	switch {
	case m.Namespace == CRINamespace:
		// The CRI owns what is in it: a manifest there would fight the
		// kubelet over its pods.
		v.add("metadata.namespace", "%q is reserved for the CRI (the kubelet's pods); manifests may not use it", m.Namespace)
	case m.Namespace != "":
		v.dnsLabel("metadata.namespace", m.Namespace)
	}
	for _, k := range sortedKeys(anyMap(m.Labels)) {
		v.qualifiedName("metadata.labels", k)
		if val := m.Labels[k]; len(val) > maxLabelValue || !labelValueRE.MatchString(val) {
			v.add("metadata.labels."+k, "%q is not a valid label value", truncate(val, 80))
		}
	}
	size := 0
	for _, k := range sortedKeys(anyMap(m.Annotations)) {
		v.qualifiedName("metadata.annotations", k)
		size += len(k) + len(m.Annotations[k])
	}
	if size > MaxAnnotations {
		v.add("metadata.annotations", "%d bytes, more than %d", size, MaxAnnotations)
	}
}

// qualifiedName checks a label or annotation key: [prefix/]name.
func (v *validator) qualifiedName(field, k string) {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		name, prefix = prefix, ""
	} else if prefix == "" || len(prefix) > maxDNSSubdomain || !dnsSubdomainRE.MatchString(prefix) {
		v.add(field, "key %q has a prefix that is not a DNS subdomain", truncate(k, 80))
		return
	}
	if len(name) > maxQualifiedName || !qualifiedRE.MatchString(name) {
		v.add(field, "key %q is not a qualified name", truncate(k, 80))
	}
}

func anyMap(m map[string]string) map[string]any {
	r := make(map[string]any, len(m))
	for k := range m {
		r[k] = nil
	}
	return r
}

func (v *validator) image(s ImageSpec) {
	switch {
	case s.Ref == "":
		v.add("spec.ref", "missing")
	case len(s.Ref) > maxReferenceBytes || !referenceRE.MatchString(s.Ref):
		v.add("spec.ref", "%q is not an image reference (host/name:tag or name@sha256:…)", truncate(s.Ref, 80))
	}
	switch s.PullPolicy {
	case PullAlways, PullIfNotPresent, PullNever:
	default:
		v.add("spec.pullPolicy", "%q is not one of Always, IfNotPresent, Never", s.PullPolicy)
	}
	if s.Platform != "" && !platformRE.MatchString(s.Platform) {
		v.add("spec.platform", "%q is not os/arch[/variant]", truncate(s.Platform, 80))
	}
	if src := s.Source; src != nil {
		switch {
		case (src.Archive == "") == (src.Layout == ""):
			v.add("spec.source", "set exactly one of archive and layout")
		case src.Archive != "":
			v.sourcePath("spec.source.archive", src.Archive)
		default:
			v.sourcePath("spec.source.layout", src.Layout)
		}
	}
	if s.Auth != nil {
		v.absPath("spec.auth.file", s.Auth.File)
	}
	switch s.Snapshotter {
	case "", "overlayfs", "native", "btrfs": // "": the node's default
	default:
		v.add("spec.snapshotter", "%q is not one of overlayfs, native, btrfs", s.Snapshotter)
	}
	if p := s.UpdatePolicy; p != nil {
		v.updatePolicy(s, *p)
	}
}

func (v *validator) updatePolicy(s ImageSpec, p UpdatePolicy) {
	switch p.Mode {
	case UpdateDigest:
	case "":
		v.add("spec.updatePolicy.mode", "missing (Digest)")
	default:
		v.add("spec.updatePolicy.mode", "%q is not Digest", truncate(string(p.Mode), 40))
	}
	if p.Interval != "" {
		if d, err := p.Interval.Value(); err != nil {
			v.add("spec.updatePolicy.interval", "%v", err)
		} else if d < MinUpdateInterval {
			v.add("spec.updatePolicy.interval", "%s is less than %s", d, MinUpdateInterval)
		}
	}
	if p.Timeout != "" {
		if d, err := p.Timeout.Value(); err != nil {
			v.add("spec.updatePolicy.timeout", "%v", err)
		} else if d <= 0 {
			v.add("spec.updatePolicy.timeout", "%s is not positive", d)
		}
	}
	if strings.Contains(s.Ref, "@") {
		v.add("spec.updatePolicy", "spec.ref %q is pinned to a digest: there is no tag to follow", truncate(s.Ref, 80))
	}
	if s.PullPolicy == PullNever {
		v.add("spec.updatePolicy", "pullPolicy Never asks no registry: there is no tag to follow")
	}
}

func (v *validator) sourcePath(field, p string) {
	if strings.ContainsRune(p, 0) {
		v.add(field, "contains a NUL byte")
	} else if !filepath.IsAbs(p) && v.o.Origin.Dir == "" {
		v.add(field, "%q is relative, and the object comes from no file to be relative to", truncate(p, 80))
	}
}

func (v *validator) task(s TaskSpec) {
	v.dnsLabel("spec.container", s.Container)
	switch s.State {
	case TaskRunning, TaskStopped, TaskPaused:
	default:
		v.add("spec.state", "%q is not one of Running, Stopped, Paused", s.State)
	}
	switch s.RestartPolicy {
	case RestartAlways, RestartOnFailure, RestartNever:
	default:
		v.add("spec.restartPolicy", "%q is not one of Always, OnFailure, Never", s.RestartPolicy)
	}
	if d, err := s.StopTimeout.Value(); err != nil {
		v.add("spec.stopTimeout", "%v", err)
	} else if d < 0 || d > MaxStopTimeout {
		v.add("spec.stopTimeout", "%s is not between 0s and %s", d, MaxStopTimeout)
	}
	v.probes(s.LivenessProbe, s.ReadinessProbe, s.StartupProbe)
	seen := map[string]bool{}
	for i, d := range s.DependsOn {
		f := field("spec.dependsOn", i)
		v.dnsLabel(f+".task", d.Task)
		if d.Task != "" && d.Task == v.o.Metadata.Name {
			v.add(f+".task", "%q is this Task itself", d.Task)
		}
		if seen[d.Task] {
			v.add(f+".task", "%q is named twice", truncate(d.Task, 80))
		}
		seen[d.Task] = true
		if d.Condition != "" && d.Condition != DependOnReady {
			v.add(f+".condition", "%q is not Ready (the only condition a Task waits for)", truncate(string(d.Condition), 32))
		}
	}
}

// userID checks the numeric parts of a user spec fit a uid_t safely.
func userID(s string) bool {
	for part := range strings.SplitSeq(s, ":") {
		if part != "" && part[0] >= '0' && part[0] <= '9' {
			if n, err := strconv.ParseUint(part, 10, 32); err != nil || n > 1<<31-1 {
				return false
			}
		}
	}
	return true
}
