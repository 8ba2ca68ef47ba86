package observed

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one thing that happened on the node. Topics use containerd's
// names (/images/create, /tasks/exit, …) plus berth's own (/reconcile/…,
// /manifests/error).
type Event struct {
	Timestamp time.Time       `json:"timestamp"`
	Namespace string          `json:"namespace,omitempty"`
	Topic     string          `json:"topic"`
	Payload   json.RawMessage `json:"event,omitempty"`
}

// Publisher publishes events. Payloads are marshalled to JSON.
type Publisher interface {
	Publish(ctx context.Context, namespace, topic string, payload any)
}

// subscriberQueue bounds what a slow subscriber can hold; past it events
// are dropped for that subscriber and counted, never blocking the core.
const subscriberQueue = 1024

// Bus is an in-memory fan-out of events to subscribers.
type Bus struct {
	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	dropped atomic.Uint64
	// OnPublish, when set before use, sees every event (metrics).
	OnPublish func(Event)
	// OnDrop, when set before use, is told of every drop.
	OnDrop func()
}

type subscriber struct {
	ch     chan Event
	filter Filter
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*subscriber]struct{}{}} }

var _ Publisher = (*Bus)(nil)

// Publish sends an event to every matching subscriber without blocking.
func (b *Bus) Publish(ctx context.Context, namespace, topic string, payload any) {
	ev := Event{Timestamp: time.Now().UTC(), Namespace: namespace, Topic: topic}
	if payload != nil {
		if raw, err := json.Marshal(payload); err == nil {
			ev.Payload = raw
		}
	}
	if b.OnPublish != nil {
		b.OnPublish(ev)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if !s.filter.Match(ev) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			b.dropped.Add(1)
			if b.OnDrop != nil {
				b.OnDrop()
			}
		}
	}
}

// Dropped is how many events slow subscribers missed.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Subscribe returns a channel of the events matching filter, closed when
// ctx ends.
func (b *Bus) Subscribe(ctx context.Context, filter Filter) <-chan Event {
	s := &subscriber{ch: make(chan Event, subscriberQueue), filter: filter}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs, s)
		close(s.ch)
		b.mu.Unlock()
	}()
	return s.ch
}
