package server

import (
	"context"
	"fmt"
	"sync/atomic"

	eventsapi "berth.dev/berth/api/events/v1"
	"berth.dev/berth/observed"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// defaultMaxSubscribers bounds concurrent event streams: each holds a queue
// of up to 1024 events and a goroutine.
const defaultMaxSubscribers = 64

// Events serves the event bus as a stream per subscriber.
type Events struct {
	Bus *observed.Bus
	// MaxSubscribers bounds concurrent subscriptions (0: 64); past it
	// Subscribe fails with ResourceExhausted.
	MaxSubscribers int

	active, live atomic.Int64
}

// Active is how many subscribers are subscribed to the bus now.
func (s *Events) Active() int { return int(s.live.Load()) }

var _ eventsapi.EventsService = (*Events)(nil)

// Subscribe streams the events matching the request's filters until the
// client goes away (ttrpc cancels ctx when its connection closes) or a send
// fails. The bus never waits for this stream: when it falls behind by the
// bus's queue, events are dropped for it and counted.
func (s *Events) Subscribe(ctx context.Context, r *eventsapi.SubscribeRequest, stream eventsapi.Events_SubscribeServer) error {
	f, err := observed.ParseFilters(r.Filters...)
	if err != nil {
		return streamErr(err)
	}
	max := s.MaxSubscribers
	if max <= 0 {
		max = defaultMaxSubscribers
	}
	if n := s.active.Add(1); n > int64(max) {
		s.active.Add(-1)
		return streamErr(fmt.Errorf("%d event subscribers already: %w", max, errdefs.ErrResourceExhausted))
	}
	defer s.active.Add(-1)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // unsubscribes; the bus closes the channel
	ch := s.Bus.Subscribe(ctx, f)
	s.live.Add(1)
	defer s.live.Add(-1)
	for ev := range ch {
		err := stream.Send(&eventsapi.Envelope{
			Timestamp: timestamppb.New(ev.Timestamp),
			Namespace: ev.Namespace,
			Topic:     ev.Topic,
			Event:     ev.Payload,
		})
		if err != nil {
			return nil // the client is gone
		}
	}
	return nil
}
