package rollout

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/spec"
)

// fakeReady answers Ready from a script of states by time since start.
type fakeReady struct {
	mu    sync.Mutex
	start time.Time
	fn    func(k spec.Key, since time.Duration) Readiness
}

func (f *fakeReady) ready(_ context.Context, k spec.Key) Readiness {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fn(k, time.Since(f.start))
}

func TestWaitReady(t *testing.T) {
	t.Parallel()
	a := spec.Key{Namespace: "default", Kind: spec.KindTask, Name: "a"}
	b := spec.Key{Namespace: "default", Kind: spec.KindContainer, Name: "b"}
	long := time.Hour
	tests := []struct {
		name    string
		fn      func(k spec.Key, since time.Duration) Readiness
		timeout time.Duration
		wantOK  bool
		wantKey spec.Key
		maxTook time.Duration
		minTook time.Duration
	}{
		{name: "ready at once, held minReady", fn: func(spec.Key, time.Duration) Readiness { return Readiness{Ready: true} },
			timeout: 5 * time.Second, wantOK: true, minTook: 200 * time.Millisecond, maxTook: 2 * time.Second},
		{name: "one never ready: the timeout names it", fn: func(k spec.Key, _ time.Duration) Readiness {
			return Readiness{Ready: k != b, Reason: "WaitingForImage"}
		}, timeout: 400 * time.Millisecond, wantKey: b, minTook: 400 * time.Millisecond, maxTook: 2 * time.Second},
		{name: "flapping never holds", fn: func(_ spec.Key, since time.Duration) Readiness {
			return Readiness{Ready: since/(50*time.Millisecond)%2 == 0, Reason: "BackOff"}
		}, timeout: 600 * time.Millisecond, wantKey: b, minTook: 600 * time.Millisecond, maxTook: 2 * time.Second},
		{name: "failed after the start: at once", fn: func(k spec.Key, since time.Duration) Readiness {
			if k == a && since > 100*time.Millisecond {
				return Readiness{Reason: "BackOff", Failed: true, Since: time.Now()}
			}
			return Readiness{Reason: "Pulling"}
		}, timeout: long, wantKey: a, maxTook: time.Second},
		{name: "failed before the start is waited out", fn: func(k spec.Key, since time.Duration) Readiness {
			if since < 300*time.Millisecond {
				return Readiness{Reason: "BackOff", Failed: true, Since: time.Now().Add(-time.Hour)}
			}
			return Readiness{Ready: true}
		}, timeout: 5 * time.Second, wantOK: true, minTook: 500 * time.Millisecond, maxTook: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeReady{start: time.Now(), fn: tt.fn}
			e := New(Options{Log: slog.New(slog.DiscardHandler), Ready: f.ready})
			defer e.Stop()
			start := time.Now()
			k, why, ok := e.waitReady(context.Background(), []spec.Key{a, b}, start, tt.timeout, 200*time.Millisecond)
			took := time.Since(start)
			if ok != tt.wantOK || (!ok && k != tt.wantKey) {
				t.Errorf("got %v %v (%s), want ok=%v key %v", ok, k, why, tt.wantOK, tt.wantKey)
			}
			if took < tt.minTook || took > tt.maxTook {
				t.Errorf("took %s, want %s..%s", took, tt.minTook, tt.maxTook)
			}
		})
	}
}
