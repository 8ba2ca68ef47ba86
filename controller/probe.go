package controller

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/network"
	"berth.dev/berth/spec"
)

// probeKind is which of a task's three probes one is.
type probeKind string

const (
	probeLiveness  probeKind = "liveness"
	probeReadiness probeKind = "readiness"
	probeStartup   probeKind = "startup"
)

// probeEvent is what one probe result changed.
type probeEvent int

const (
	probeNoChange probeEvent = iota
	// probeReady: a readiness probe passes again, or a startup probe
	// passed (the others may start).
	probeReady
	// probeUnready: a readiness probe failed failureThreshold times.
	probeUnready
	// probeUnhealthy: a liveness probe failed failureThreshold times in a
	// row, or a startup probe did before it ever passed: the task is
	// stopped and its restart policy judges the exit.
	probeUnhealthy
)

// probeState is the pure state machine of one probe: consecutive results
// against its thresholds, as Kubernetes counts them. A liveness probe is
// alive until it fails; readiness and startup start failing.
type probeState struct {
	kind                probeKind
	failureThreshold    int
	successThreshold    int
	successes, failures int
	// passing: readiness passes; startup has passed once; liveness has
	// not failed failureThreshold times.
	passing bool
	// output is the last result's output (the reason of a failure).
	output string
}

func newProbeState(kind probeKind, p *spec.Probe) *probeState {
	return &probeState{kind: kind, failureThreshold: max(p.FailureThreshold, 1),
		successThreshold: max(p.SuccessThreshold, 1), passing: kind == probeLiveness}
}

// observe records one result and says what it changed.
func (s *probeState) observe(ok bool, output string) probeEvent {
	s.output = output
	if ok {
		s.successes, s.failures = s.successes+1, 0
		if !s.passing && s.successes >= s.successThreshold {
			s.passing = true
			return probeReady
		}
		return probeNoChange
	}
	s.failures, s.successes = s.failures+1, 0
	switch s.kind {
	case probeLiveness:
		if s.passing && s.failures >= s.failureThreshold {
			s.passing = false
			return probeUnhealthy
		}
	case probeStartup:
		if !s.passing && s.failures >= s.failureThreshold {
			return probeUnhealthy
		}
	case probeReadiness:
		if s.passing && s.failures >= s.failureThreshold {
			s.passing = false
			return probeUnready
		}
	}
	return probeNoChange
}

// probeFunc runs one probe once: success and its output.
type probeFunc func(ctx context.Context, p *spec.Probe) (bool, string)

// prober runs the probes of one run of one task (one pid): a goroutine
// per probe, each on its own period. It only observes; what follows (a
// Ready condition, a stop) is the Task's reconcile, which it wakes.
type prober struct {
	ident  string // what this prober was started for (pid, start, probes)
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// release frees what the probes hold (the network namespace), after
	// they stopped.
	release func()

	mu        sync.Mutex
	states    map[probeKind]*probeState
	started   bool   // no startup probe, or it passed
	unhealthy string // set once a liveness or startup probe failed
	failedBy  probeKind
}

// newProber starts the probes; wake is called on every change.
// wasReady starts the run as passed its startup probe and ready.
func newProber(ctx context.Context, ident string, probes spec.Probes, startedAt time.Time, wasReady bool, run probeFunc, wake func()) *prober {
	ctx, cancel := context.WithCancel(ctx)
	pr := &prober{ident: ident, cancel: cancel, states: map[probeKind]*probeState{}, started: probes.Startup == nil || wasReady}
	for kind, p := range map[probeKind]*spec.Probe{probeLiveness: probes.Liveness, probeReadiness: probes.Readiness, probeStartup: probes.Startup} {
		if p == nil {
			continue
		}
		pr.states[kind] = newProbeState(kind, p)
		if wasReady {
			pr.states[kind].passing = true
		}
		pr.wg.Add(1)
		go func() {
			defer pr.wg.Done()
			pr.work(ctx, kind, p, startedAt, run, wake)
		}()
	}
	return pr
}

func (pr *prober) stop() {
	pr.cancel()
	pr.wg.Wait()
	if pr.release != nil {
		pr.release()
	}
}

// work runs one probe every periodSeconds from initialDelaySeconds after
// the task's start, until ctx ends or the probe made the task unhealthy.
func (pr *prober) work(ctx context.Context, kind probeKind, p *spec.Probe, startedAt time.Time, run probeFunc, wake func()) {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	first := time.Until(startedAt.Add(time.Duration(p.InitialDelaySeconds) * time.Second))
	t := time.NewTimer(max(first, 0))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(period)
		pr.mu.Lock()
		started := pr.started
		pr.mu.Unlock()
		if kind == probeStartup && started {
			return // a startup probe stops once it passed
		}
		if kind != probeStartup && !started {
			continue
		}
		ok, out := run(ctx, p)
		if ctx.Err() != nil {
			return
		}
		pr.mu.Lock()
		ev := pr.states[kind].observe(ok, out)
		switch ev {
		case probeReady:
			if kind == probeStartup {
				pr.started = true
			}
		case probeUnhealthy:
			if pr.unhealthy == "" {
				pr.unhealthy = fmt.Sprintf("%s probe failed %d times: %s", kind, pr.states[kind].failures, out)
				pr.failedBy = kind
			}
		}
		pr.mu.Unlock()
		if ev != probeNoChange {
			wake()
		}
		if ev == probeUnhealthy {
			return
		}
	}
}

// health is what the probes say now: the reason the task is unhealthy
// ("" if it is not), and whether it is ready with the reason if not.
func (pr *prober) health() (unhealthy string, ready bool, reason, message string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.unhealthy != "" {
		return pr.unhealthy, false, "Unhealthy", pr.unhealthy
	}
	if !pr.started {
		msg := "waiting for the startup probe to pass"
		if s := pr.states[probeStartup]; s != nil && s.output != "" {
			msg += ": " + s.output
		}
		return "", false, "Starting", msg
	}
	if s := pr.states[probeReadiness]; s != nil && !s.passing {
		msg := "readiness probe has not passed yet"
		if s.output != "" {
			msg = "readiness probe failed: " + s.output
		}
		return "", false, "NotReady", msg
	}
	return "", true, "", ""
}

// proberIdent names one run of a task with one set of probes: a prober
// for another pid, start or probe spec is a new one.
func proberIdent(id string, pid int, startedAt time.Time, probes spec.Probes) string {
	b, _ := json.Marshal(probes)
	return id + "/" + strconv.Itoa(pid) + "/" + startedAt.UTC().Format(time.RFC3339Nano) + "/" + string(b)
}

// ensureProber returns the running prober of the task's current run,
// starting it (and stopping one of an earlier run) as needed; nil when the
// task has no probes.
//
// wasReady starts it as the recorded status left the run: started and
// ready (a berthd restarted under a running task).
func (c *Controller) ensureProber(key spec.Key, ns, id string, pid int, startedAt time.Time, probes spec.Probes, wasReady bool) *prober {
	if !probes.Any() {
		c.stopProber(key)
		return nil
	}
	ident := proberIdent(id, pid, startedAt, probes)
	c.mu.Lock()
	pr := c.probers[key]
	if pr != nil && pr.ident == ident {
		c.mu.Unlock()
		return pr
	}
	delete(c.probers, key)
	c.mu.Unlock()
	if pr != nil {
		pr.stop()
	}
	po, _ := c.opts.Observer.(ProbeObserver)
	// HTTP and TCP probes dial through the task's network namespace held
	// open from now on: /proc/PID/ns/net at each probe would, once the
	// task exited and its pid was reused, name another process's.
	netns, closeNetns := holdNetns(pid)
	run := func(ctx context.Context, p *spec.Probe) (bool, string) {
		start := time.Now()
		ok, out := c.runProbe(ctx, ns, id, netns, p)
		if po != nil && ctx.Err() == nil {
			po.Probed(string(kindOf(probes, p)), handlerOf(p), ok, time.Since(start))
		}
		return ok, out
	}
	pr = newProber(c.runCtx, ident, probes, startedAt, wasReady, run, func() { c.queue.Add(key) })
	pr.release = closeNetns
	c.mu.Lock()
	if old := c.probers[key]; old != nil {
		// Another reconcile of this key cannot run at once (the queue
		// says so); this is for safety only.
		c.mu.Unlock()
		pr.stop()
		return old
	}
	c.probers[key] = pr
	c.mu.Unlock()
	return pr
}

// stopProber stops the task's probes, if any run.
func (c *Controller) stopProber(key spec.Key) {
	c.mu.Lock()
	pr := c.probers[key]
	delete(c.probers, key)
	c.mu.Unlock()
	if pr != nil {
		pr.stop()
	}
}

// kindOf says which of probes p is.
func kindOf(probes spec.Probes, p *spec.Probe) probeKind {
	switch p {
	case probes.Liveness:
		return probeLiveness
	case probes.Startup:
		return probeStartup
	}
	return probeReadiness
}

// handlerOf names p's handler, as the manifest does.
func handlerOf(p *spec.Probe) string {
	switch {
	case p.Exec != nil:
		return "exec"
	case p.HTTPGet != nil:
		return "httpGet"
	}
	return "tcpSocket"
}

// stopAllProbers stops every task's probes (the controller ends).
func (c *Controller) stopAllProbers() {
	c.mu.Lock()
	probers := c.probers
	c.probers = map[spec.Key]*prober{}
	c.mu.Unlock()
	for _, pr := range probers {
		pr.stop()
	}
}

// runProbe runs p once against the task of container id, whose network
// namespace netns names.
func (c *Controller) runProbe(ctx context.Context, ns, id, netns string, p *spec.Probe) (bool, string) {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	switch {
	case p.Exec != nil:
		r, err := c.opts.Node.ProbeExec(ctx, ns, id, p.Exec.Command, timeout)
		out := strings.TrimSpace(string(r.Output))
		if err != nil {
			return false, joinOutput(err.Error(), out)
		}
		if r.ExitStatus != 0 {
			return false, joinOutput(fmt.Sprintf("exit status %d", r.ExitStatus), out)
		}
		return true, out
	case p.HTTPGet != nil:
		return httpProbe(ctx, netns, p.HTTPGet, timeout)
	case p.TCPSocket != nil:
		return tcpProbe(ctx, netns, p.TCPSocket, timeout)
	}
	return false, "no probe handler"
}

// tcpProbe connects from inside netns: a connection is success.
func tcpProbe(ctx context.Context, netns string, t *spec.TCPSocketAction, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(probeHost(t.Host), strconv.Itoa(t.Port))
	conn, err := network.DialIn(ctx, netns, addr)
	if err != nil {
		return false, "tcp " + addr + ": " + err.Error()
	}
	conn.Close()
	return true, "tcp " + addr + ": connected"
}

// netnsOf is the network namespace of a task's init: the container's,
// whatever its network (host, none, bridged).
func netnsOf(pid int) string { return fmt.Sprintf("/proc/%d/ns/net", pid) }

// holdNetns opens the network namespace of pid and returns a path that
// names that namespace for as long as it is held (/proc/self/fd/N), and
// its release. If it cannot be opened (the task is gone), the /proc path
// is returned and the probes fail on it, as they should.
func holdNetns(pid int) (string, func()) {
	f, err := os.Open(netnsOf(pid))
	if err != nil {
		return netnsOf(pid), func() {}
	}
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd()), func() { f.Close() }
}

func probeHost(h string) string {
	if h == "" {
		return "127.0.0.1"
	}
	return h
}

func joinOutput(head, out string) string {
	if out == "" {
		return head
	}
	return head + ": " + out
}

// httpProbe sends the GET from inside netns: a status from 200 to 399 is
// success (a redirect is not followed: it counts as success, as
// Kubernetes counts one to another host).
func httpProbe(ctx context.Context, netns string, h *spec.HTTPGetAction, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(probeHost(h.Host), strconv.Itoa(h.Port))
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return network.DialIn(ctx, netns, addr) },
		DisableKeepAlives: true,
		// As Kubernetes: a probe checks the service answers, not who it is.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	scheme := "http"
	if h.Scheme == spec.SchemeHTTPS {
		scheme = "https"
	}
	path := h.Path
	if path == "" {
		path = "/"
	}
	url := scheme + "://" + addr + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "berth-probe/1")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, "GET " + url + ": " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	out := fmt.Sprintf("GET %s: %s", url, resp.Status)
	if b := strings.TrimSpace(string(body)); b != "" && (resp.StatusCode < 200 || resp.StatusCode > 399) {
		out += ": " + b
	}
	return resp.StatusCode >= 200 && resp.StatusCode <= 399, out
}
