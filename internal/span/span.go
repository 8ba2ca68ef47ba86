// Package span records how long the steps of one operation take, cheaply
// enough to stay on in production: a Recorder is a mutex and a slice, a
// step is two time.Now calls and an append. berthd's API edge gives each
// call a Recorder and logs its steps at debug level in one line
// ("msg=spans method=... total=... <step>=<duration> ..."), which is what
// make bench reads to print where the time of a `berth run --rm` goes.
//
//	ctx = span.With(ctx, span.New())
//	end := span.Start(ctx, "snapshot.prepare")
//	... work ...
//	end()
//
// Without a Recorder in the context, Start returns a no-op.
package span

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Span is one recorded step.
type Span struct {
	Name string
	Dur  time.Duration
}

// Recorder collects the spans of one operation.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	spans []Span
}

// New is a Recorder whose operation starts now.
func New() *Recorder { return &Recorder{start: time.Now(), spans: make([]Span, 0, 8)} }

type key struct{}

// With returns ctx carrying r.
func With(ctx context.Context, r *Recorder) context.Context {
	return context.WithValue(ctx, key{}, r)
}

// From is the Recorder of ctx, nil when it has none.
func From(ctx context.Context) *Recorder {
	r, _ := ctx.Value(key{}).(*Recorder)
	return r
}

func nop() {}

// Start begins a step named name on ctx's Recorder; calling the result
// ends it. Steps of the same name add up (two mounts are one "mount").
func Start(ctx context.Context, name string) func() {
	r := From(ctx)
	if r == nil {
		return nop
	}
	t := time.Now()
	return func() { r.Add(name, time.Since(t)) }
}

// Add records a step of duration d.
func (r *Recorder) Add(name string, d time.Duration) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.spans {
		if r.spans[i].Name == name {
			r.spans[i].Dur += d
			return
		}
	}
	r.spans = append(r.spans, Span{Name: name, Dur: d})
}

// Spans are the steps recorded so far, in the order they first ended.
func (r *Recorder) Spans() []Span {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Elapsed is the time since the Recorder was made.
func (r *Recorder) Elapsed() time.Duration { return time.Since(r.start) }

// Attrs are the steps as log attributes (name=duration), after total.
func (r *Recorder) Attrs() []any {
	ss := r.Spans()
	out := make([]any, 0, 2*len(ss)+2)
	out = append(out, slog.Duration("total", r.Elapsed()))
	for _, s := range ss {
		out = append(out, slog.Duration(s.Name, s.Dur))
	}
	return out
}

// Log writes the Recorder's steps as one debug line "spans" with the
// given leading attributes, when log is enabled at debug level.
func Log(ctx context.Context, log *slog.Logger, r *Recorder, args ...any) {
	if r == nil || !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	log.Debug("spans", append(args, r.Attrs()...)...)
}
