package spec

import (
	"fmt"
	"slices"
	"strings"
)

// Probe defaults, as Kubernetes has them.
const (
	DefaultProbePeriodSeconds    = 10
	DefaultProbeTimeoutSeconds   = 1
	DefaultProbeFailureThreshold = 3
	DefaultProbeSuccessThreshold = 1
	// MaxProbeSeconds bounds every probe timing (a day).
	MaxProbeSeconds = 86400
)

// Probe is a health check of a task, in Kubernetes' shape: exactly one of
// exec, httpGet and tcpSocket, run every periodSeconds once
// initialDelaySeconds have passed since the task started. A liveness
// probe that fails failureThreshold times in a row restarts the task
// (under its restart policy and backoff, reason Unhealthy); a readiness
// probe decides the Ready condition; a startup probe holds the other two
// off until it has passed once.
type Probe struct {
	// Exec runs a command inside the container (through the task's shim,
	// as `berth exec` does); exit status 0 is success.
	Exec *ExecAction `json:"exec,omitempty"`
	// HTTPGet sends a GET from the node into the container's network
	// namespace (so it works on none and bridged networks); a status from
	// 200 to 399 is success.
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
	// TCPSocket opens a TCP connection in the container's network
	// namespace; a connection is success.
	TCPSocket *TCPSocketAction `json:"tcpSocket,omitempty"`
	// InitialDelaySeconds is how long after the task's start the first probe runs.
	InitialDelaySeconds int `json:"initialDelaySeconds,omitempty"`
	// PeriodSeconds is how often the probe runs.
	PeriodSeconds int `json:"periodSeconds,omitempty"`
	// TimeoutSeconds is how long one probe may take before it counts as failed.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// FailureThreshold is how many failures in a row make the probe fail.
	FailureThreshold int `json:"failureThreshold,omitempty"`
	// SuccessThreshold is how many successes in a row make a failed probe
	// pass again (1 for liveness and startup probes).
	SuccessThreshold int `json:"successThreshold,omitempty"`
}

// ExecAction is a command run inside the container.
type ExecAction struct {
	// Command is the program and its arguments (no shell unless named).
	Command []string `json:"command"`
}

// HTTPGetAction is an HTTP GET to a port of the container.
type HTTPGetAction struct {
	// Path is the request's path.
	Path string `json:"path,omitempty"`
	// Port is the port inside the container (its network namespace).
	Port int `json:"port"`
	// Host is the address dialled inside the container's network namespace.
	Host string `json:"host,omitempty"`
	// Scheme is HTTP or HTTPS (HTTPS does not verify the certificate, as Kubernetes).
	Scheme string `json:"scheme,omitempty"`
	// HTTPHeaders are extra request headers.
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is one request header.
type HTTPHeader struct {
	// Name of the header.
	Name string `json:"name"`
	// Value of the header.
	Value string `json:"value"`
}

// TCPSocketAction is a TCP connect to a port of the container.
type TCPSocketAction struct {
	// Port is the port inside the container (its network namespace).
	Port int `json:"port"`
	// Host is the address dialled inside the container's network namespace.
	Host string `json:"host,omitempty"`
}

// Probes are the three probes of a task. A Task's probe of a type
// replaces its Container's probe of that type (EffectiveProbes).
type Probes struct {
	Liveness, Readiness, Startup *Probe
}

// Any reports whether any probe is set.
func (p Probes) Any() bool { return p.Liveness != nil || p.Readiness != nil || p.Startup != nil }

// EffectiveProbes are the probes a Task's task runs: each of the Task's,
// else its Container's.
func EffectiveProbes(t TaskSpec, c ContainerSpec) Probes {
	pick := func(a, b *Probe) *Probe {
		if a != nil {
			return a
		}
		return b
	}
	return Probes{
		Liveness:  pick(t.LivenessProbe, c.LivenessProbe),
		Readiness: pick(t.ReadinessProbe, c.ReadinessProbe),
		Startup:   pick(t.StartupProbe, c.StartupProbe),
	}
}

// Probe handler schemes.
const (
	SchemeHTTP  = "HTTP"
	SchemeHTTPS = "HTTPS"
)

// defaultProbe returns a copy of p with its unset timings and HTTP fields
// defaulted; nil stays nil.
func defaultProbe(p *Probe) *Probe {
	if p == nil {
		return nil
	}
	q := p.deepCopy()
	if q.PeriodSeconds == 0 {
		q.PeriodSeconds = DefaultProbePeriodSeconds
	}
	if q.TimeoutSeconds == 0 {
		q.TimeoutSeconds = DefaultProbeTimeoutSeconds
	}
	if q.FailureThreshold == 0 {
		q.FailureThreshold = DefaultProbeFailureThreshold
	}
	if q.SuccessThreshold == 0 {
		q.SuccessThreshold = DefaultProbeSuccessThreshold
	}
	if h := q.HTTPGet; h != nil {
		if h.Path == "" {
			h.Path = "/"
		}
		if h.Scheme == "" {
			h.Scheme = SchemeHTTP
		}
	}
	return q
}

func (p *Probe) deepCopy() *Probe {
	if p == nil {
		return nil
	}
	q := *p
	if p.Exec != nil {
		e := ExecAction{Command: slices.Clone(p.Exec.Command)}
		q.Exec = &e
	}
	if p.HTTPGet != nil {
		h := *p.HTTPGet
		h.HTTPHeaders = slices.Clone(h.HTTPHeaders)
		q.HTTPGet = &h
	}
	if p.TCPSocket != nil {
		t := *p.TCPSocket
		q.TCPSocket = &t
	}
	return &q
}

// probe checks one probe at field f (spec.livenessProbe).
func (v *validator) probe(f string, p *Probe, liveOrStartup bool) {
	if p == nil {
		return
	}
	n := 0
	if p.Exec != nil {
		n++
		if len(p.Exec.Command) == 0 {
			v.add(f+".exec.command", "missing (the program and its arguments)")
		}
		for i, a := range p.Exec.Command {
			if strings.ContainsRune(a, 0) {
				v.add(field(f+".exec.command", i), "contains a NUL byte")
			}
		}
	}
	if h := p.HTTPGet; h != nil {
		n++
		v.port(f+".httpGet.port", h.Port)
		v.probeHost(f+".httpGet.host", h.Host)
		if h.Path != "" && (!strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \x00\r\n")) {
			v.add(f+".httpGet.path", "%q is not an absolute URL path (/healthz)", truncate(h.Path, 80))
		}
		switch h.Scheme {
		case "", SchemeHTTP, SchemeHTTPS:
		default:
			msg := fmt.Sprintf("%q is not one of HTTP, HTTPS", truncate(h.Scheme, 32))
			if up := strings.ToUpper(h.Scheme); up == SchemeHTTP || up == SchemeHTTPS {
				msg += fmt.Sprintf("; did you mean %s?", up)
			}
			v.add(f+".httpGet.scheme", "%s", msg)
		}
		for i, hd := range h.HTTPHeaders {
			hf := field(f+".httpGet.httpHeaders", i)
			if hd.Name == "" || strings.IndexFunc(hd.Name, notToken) >= 0 {
				v.add(hf+".name", "%q is not an HTTP header name", truncate(hd.Name, 80))
			}
			if strings.ContainsAny(hd.Value, "\r\n\x00") {
				v.add(hf+".value", "contains a line break or a NUL byte")
			}
		}
	}
	if t := p.TCPSocket; t != nil {
		n++
		v.port(f+".tcpSocket.port", t.Port)
		v.probeHost(f+".tcpSocket.host", t.Host)
	}
	switch {
	case n == 0:
		v.add(f, "set one of exec, httpGet, tcpSocket")
	case n > 1:
		v.add(f, "set only one of exec, httpGet, tcpSocket")
	}
	v.seconds(f+".initialDelaySeconds", p.InitialDelaySeconds, 0)
	v.seconds(f+".periodSeconds", p.PeriodSeconds, 1)
	v.seconds(f+".timeoutSeconds", p.TimeoutSeconds, 1)
	v.seconds(f+".failureThreshold", p.FailureThreshold, 1)
	v.seconds(f+".successThreshold", p.SuccessThreshold, 1)
	if liveOrStartup && p.SuccessThreshold > 1 {
		v.add(f+".successThreshold", "%d: must be 1 for a liveness or startup probe", p.SuccessThreshold)
	}
	if p.TimeoutSeconds > 0 && p.PeriodSeconds > 0 && p.TimeoutSeconds > p.PeriodSeconds {
		v.add(f+".timeoutSeconds", "%d is longer than periodSeconds (%d)", p.TimeoutSeconds, p.PeriodSeconds)
	}
}

// probes checks the three probes of a Container or Task spec.
func (v *validator) probes(live, ready, startup *Probe) {
	v.probe("spec.livenessProbe", live, true)
	v.probe("spec.readinessProbe", ready, false)
	v.probe("spec.startupProbe", startup, true)
}

func (v *validator) port(f string, p int) {
	if p < 1 || p > 65535 {
		v.add(f, "%d is not a port (1-65535)", p)
	}
}

func (v *validator) probeHost(f, h string) {
	if h != "" && (len(h) > maxDNSSubdomain || strings.ContainsAny(h, "/ \x00@") || strings.Trim(h, "[]:.0123456789abcdefABCDEF") != "" && !dnsSubdomainRE.MatchString(h)) {
		v.add(f, "%q is not an address or host name", truncate(h, 80))
	}
}

// seconds checks a probe timing is within [lo, MaxProbeSeconds]. Zero is
// "unset" for those defaulted, so it is only refused on a probe that was
// not defaulted (lo 1 then catches it).
func (v *validator) seconds(f string, n, lo int) {
	if n < lo || n > MaxProbeSeconds {
		v.add(f, "%d is not between %d and %d", n, lo, MaxProbeSeconds)
	}
}

// notToken reports whether r may not appear in an HTTP token (RFC 9110).
func notToken(r rune) bool {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
		return false
	}
	return !strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

// InstanceHash is the Hash of what a Container's container is made from:
// its spec without the probes. Probes watch the task and change nothing
// of the container, so a probe changed restarts the probes, not the
// container. A Container without probes has InstanceHash == Hash, so no
// container made before probes existed is recreated.
func InstanceHash(o Object) string {
	if c, ok := o.Spec.(ContainerSpec); ok {
		c.LivenessProbe, c.ReadinessProbe, c.StartupProbe = nil, nil, nil
		o.Spec = c
	}
	return Hash(o)
}
