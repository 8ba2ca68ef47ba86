package controller

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/spec"
)

func TestProbeState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		kind     probeKind
		fail, ok int    // thresholds
		results  string // s = success, f = failure
		want     []probeEvent
		passing  bool
	}{
		{"liveness stays alive on success", probeLiveness, 3, 1, "sss", []probeEvent{0, 0, 0}, true},
		{"liveness fails at the threshold", probeLiveness, 3, 1, "ffff", []probeEvent{0, 0, probeUnhealthy, 0}, false},
		{"liveness success resets the count", probeLiveness, 3, 1, "ffsff", []probeEvent{0, 0, 0, 0, 0}, true},
		{"liveness threshold 1", probeLiveness, 1, 1, "f", []probeEvent{probeUnhealthy}, false},
		{"readiness starts unready", probeReadiness, 3, 1, "f", []probeEvent{0}, false},
		{"readiness ready on first success", probeReadiness, 3, 1, "fs", []probeEvent{0, probeReady}, true},
		{"readiness needs successThreshold in a row", probeReadiness, 1, 2, "sfss", []probeEvent{0, 0, 0, probeReady}, true},
		{"readiness unready at the failure threshold", probeReadiness, 2, 1, "sffs", []probeEvent{probeReady, 0, probeUnready, probeReady}, true},
		{"readiness flaps back", probeReadiness, 1, 1, "sfsf", []probeEvent{probeReady, probeUnready, probeReady, probeUnready}, false},
		{"startup passes once", probeStartup, 3, 1, "ffs", []probeEvent{0, 0, probeReady}, true},
		{"startup fails at the threshold", probeStartup, 3, 1, "fff", []probeEvent{0, 0, probeUnhealthy}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newProbeState(tt.kind, &spec.Probe{FailureThreshold: tt.fail, SuccessThreshold: tt.ok})
			for i, r := range tt.results {
				if got := s.observe(r == 's', string(r)); got != tt.want[i] {
					t.Fatalf("result %d (%c): event %d, want %d", i, r, got, tt.want[i])
				}
			}
			if s.passing != tt.passing {
				t.Errorf("passing %v, want %v", s.passing, tt.passing)
			}
		})
	}
}

// A startup probe holds the liveness probe off: while it fails, a failing
// liveness probe never runs, and once it fails its threshold the task is
// unhealthy with the startup probe's output.
func TestProber_StartupGatesLiveness(t *testing.T) {
	t.Parallel()
	var liveRuns atomic.Int32
	run := func(_ context.Context, p *spec.Probe) (bool, string) {
		if p.Exec.Command[0] == "live" {
			liveRuns.Add(1)
			return false, "dead"
		}
		return false, "not started"
	}
	woke := make(chan struct{}, 10)
	probes := spec.Probes{
		Liveness: &spec.Probe{Exec: &spec.ExecAction{Command: []string{"live"}}, PeriodSeconds: 1, FailureThreshold: 1},
		Startup:  &spec.Probe{Exec: &spec.ExecAction{Command: []string{"start"}}, PeriodSeconds: 1, FailureThreshold: 1},
	}
	pr := newProber(context.Background(), "x", probes, time.Now(), false, run, func() { woke <- struct{}{} })
	defer pr.stop()
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("never woken")
	}
	unhealthy, ready, reason, _ := pr.health()
	if !strings.HasPrefix(unhealthy, "startup probe failed 1 times: not started") || ready || reason != "Unhealthy" {
		t.Errorf("health = %q %v %q", unhealthy, ready, reason)
	}
	if n := liveRuns.Load(); n != 0 {
		t.Errorf("liveness ran %d times before startup passed", n)
	}
}

// Readiness follows its probe both ways, and the prober says why.
func TestProber_Readiness(t *testing.T) {
	t.Parallel()
	var ok atomic.Bool
	run := func(context.Context, *spec.Probe) (bool, string) {
		if ok.Load() {
			return true, "fine"
		}
		return false, "exit status 1: no"
	}
	woke := make(chan struct{}, 10)
	p := &spec.Probe{Exec: &spec.ExecAction{Command: []string{"x"}}, PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1}
	pr := newProber(context.Background(), "x", spec.Probes{Readiness: p}, time.Now(), false, run, func() { woke <- struct{}{} })
	defer pr.stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ready, reason, msg := pr.health()
		if !ready && reason == "NotReady" && msg == "readiness probe failed: exit status 1: no" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never NotReady with the probe's output: %v %q %q", ready, reason, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ok.Store(true)
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("not woken when readiness passed")
	}
	if _, ready, _, _ := pr.health(); !ready {
		t.Error("not ready after a success")
	}
}

// A prober started for a run recorded Ready (berthd restarted) is ready at
// once, and its first failures count against the threshold as usual.
func TestProber_WasReady(t *testing.T) {
	t.Parallel()
	run := func(context.Context, *spec.Probe) (bool, string) { return false, "down" }
	p := &spec.Probe{Exec: &spec.ExecAction{Command: []string{"x"}}, PeriodSeconds: 1, FailureThreshold: 1, InitialDelaySeconds: 60}
	pr := newProber(context.Background(), "x", spec.Probes{Readiness: p, Startup: p}, time.Now(), true, run, func() {})
	defer pr.stop()
	if _, ready, reason, _ := pr.health(); !ready {
		t.Errorf("a run recorded Ready starts %s", reason)
	}
}
