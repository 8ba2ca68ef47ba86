package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/content/reference"
	"berth.dev/berth/desired"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxDescribeEvents bounds the events Describe returns (the newest).
//
// The recent-events ring is shared by every object; a chatty one (a task
// in a restart loop) must not make describe of it unreadable.
const maxDescribeEvents = 50

// Get lists the objects in force with their recorded status.
//
// It lists the desired store, not the observed statuses: what is in force
// is what the user asked for, and an object whose status is not written
// yet (just applied) is still shown, with no conditions.
func (s *Manifests) Get(ctx context.Context, r *manifestsapi.GetRequest) (*manifestsapi.GetResponse, error) {
	kind, err := ParseKind(r.Kind)
	if err != nil {
		return nil, err
	}
	// The selector is evaluated here, not in the client, so a watcher or a
	// script gets only what it asked for.
	sel, err := spec.ParseSelector(r.Selector)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	f := desired.Filter{Namespace: r.Namespace, Kind: kind}
	if r.AllNamespaces {
		f.Namespace = ""
	} else if f.Namespace == "" {
		f.Namespace = spec.DefaultNamespace
	}
	resp := &manifestsapi.GetResponse{}
	for _, e := range s.Desired.List(f) {
		if r.Name != "" && e.Key.Name != r.Name || !sel.Matches(e.Object.Metadata.Labels) {
			continue
		}
		o, err := s.objectToAPI(ctx, e)
		if err != nil {
			return nil, err
		}
		resp.Objects = append(resp.Objects, o)
	}
	if r.Name != "" && len(resp.Objects) == 0 && len(sel) == 0 {
		what := "object"
		if kind != "" {
			what = string(kind)
		}
		return nil, fmt.Errorf("%s %s/%s is not declared: %w", what, f.Namespace, r.Name, errdefs.ErrNotFound)
	}
	return resp, nil
}

// withStatus returns the entry's object with its recorded status, if any.
func (s *Manifests) withStatus(ctx context.Context, e desired.Entry) (spec.Object, error) {
	o := e.Object.DeepCopy()
	st, err := s.DB.GetStatus(ctx, e.Key)
	switch {
	case err == nil:
		o.Status = st.Status
	case !errdefs.IsNotFound(err):
		return o, fmt.Errorf("status of %s: %w", e.Key, err)
	}
	return o, nil
}

// objectToAPI sends the object as JSON rather than as a proto message:
// the manifest types live in spec and evolve there, and the CLI decodes
// them with the same types, so no second schema has to be kept in step.
func (s *Manifests) objectToAPI(ctx context.Context, e desired.Entry) (*manifestsapi.Object, error) {
	o, err := s.withStatus(ctx, e)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.Key, err)
	}
	return &manifestsapi.Object{Json: b, Source: e.Source, Generation: e.Generation}, nil
}

// Describe returns one object with its status, the sources that also
// declare it, the state of its own source, and its recent events.
func (s *Manifests) Describe(ctx context.Context, r *manifestsapi.DescribeRequest) (*manifestsapi.DescribeResponse, error) {
	k, err := keyFromAPI(r.Ref)
	if err != nil {
		return nil, err
	}
	e, ok := s.Desired.Get(k)
	if !ok {
		return s.describeUndeclared(ctx, k)
	}
	obj, err := s.objectToAPI(ctx, e)
	if err != nil {
		return nil, err
	}
	resp := &manifestsapi.DescribeResponse{Object: obj}
	for _, c := range s.Desired.ConflictsFor(k) {
		resp.Conflicts = append(resp.Conflicts, c.String())
	}
	for _, src := range s.Desired.Sources() {
		if src.Name == e.Source {
			resp.Source = sourceToAPI(src)
		}
	}
	if s.Recent != nil {
		evs := s.Recent.Match(nil)
		var mine []observed.Event
		m := eventMatcher(e)
		for _, ev := range evs {
			if !m(ev) {
				continue
			}
			// A resync may report the same status again: keep the first.
			if n := len(mine); n > 0 && mine[n-1].Topic == ev.Topic && bytes.Equal(mine[n-1].Payload, ev.Payload) {
				continue
			}
			mine = append(mine, ev)
		}
		if len(mine) > maxDescribeEvents {
			mine = mine[len(mine)-maxDescribeEvents:]
		}
		for _, ev := range mine {
			resp.Events = append(resp.Events, &manifestsapi.Event{
				Timestamp: timestamppb.New(ev.Timestamp), Topic: ev.Topic, Event: ev.Payload,
			})
		}
	}
	return resp, nil
}

// eventMatcher selects the events about an object: those of the
// controllers naming its kind and name, those of the node naming what it
// made (a container's or task's id, an image's record name), and the
// errors of the manifest file that declares it.
//
// Events carry no object key of their own (the node's events are
// containerd's and know nothing of manifests), so the match is by what
// the object made on the node.
func eventMatcher(e desired.Entry) func(observed.Event) bool {
	k := e.Key
	id := "" // the node's id of what the object made
	switch sp := e.Object.Spec.(type) {
	case spec.ContainerSpec:
		id = k.Name
	case spec.TaskSpec:
		id = sp.Container
	case spec.ImageSpec:
		if ref, err := reference.Parse(sp.Ref); err == nil {
			id = ref.Name()
		}
	}
	return func(ev observed.Event) bool {
		var p struct {
			Kind, Name, ID, Source string
		}
		if len(ev.Payload) > 0 {
			_ = json.Unmarshal(ev.Payload, &p)
		}
		if ev.Topic == "/manifests/error" {
			return p.Source != "" && p.Source == e.Source
		}
		if ev.Namespace != k.Namespace {
			return false
		}
		if p.Kind != "" {
			return p.Kind == string(k.Kind) && p.Name == k.Name
		}
		if id == "" {
			return false
		}
		switch k.Kind {
		case spec.KindImage:
			return isImageTopic(ev.Topic) && p.Name == id
		case spec.KindContainer:
			return (p.ID == id || p.Name == id) && !isImageTopic(ev.Topic) && !isTaskTopic(ev.Topic)
		case spec.KindTask:
			return p.ID == id && isTaskTopic(ev.Topic)
		}
		return false
	}
}

func isImageTopic(t string) bool { return len(t) > 8 && t[:8] == "/images/" }
func isTaskTopic(t string) bool  { return len(t) > 7 && t[:7] == "/tasks/" }

// describeUndeclared shows an object no longer declared whose teardown
// has not finished (a Network still in use): its last status, which says
// why. An object neither declared nor being removed is not found.
func (s *Manifests) describeUndeclared(ctx context.Context, k spec.Key) (*manifestsapi.DescribeResponse, error) {
	st, err := s.DB.GetStatus(ctx, k)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%s is not declared: %w", k, errdefs.ErrNotFound)
		}
		return nil, err
	}
	b, err := json.Marshal(map[string]any{"apiVersion": spec.APIVersion, "kind": k.Kind,
		"metadata": map[string]string{"name": k.Name, "namespace": k.Namespace}, "status": st.Status})
	if err != nil {
		return nil, err
	}
	return &manifestsapi.DescribeResponse{Object: &manifestsapi.Object{Json: b, Source: st.Source + " (no longer declared: being removed)"}}, nil
}
