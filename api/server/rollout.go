package server

import (
	"context"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	rolloutapi "berth.dev/berth/api/rollout/v1"
	"berth.dev/berth/desired"
	"berth.dev/berth/rollout"
	"berth.dev/berth/spec"
)

// DefaultRolloutSet is the apply set of an atomic apply that names none.
const DefaultRolloutSet = "default"

// Rollout serves atomic applies, their history and undo.
type Rollout struct {
	Engine    *rollout.Engine
	Revisions *desired.Revisions
	// Manifests, when set, says which Tasks the rollout restarts by
	// recreating their Containers (reported "restarted", as apply does).
	Manifests *Manifests
}

var _ rolloutapi.RolloutService = (*Rollout)(nil)

func setOrDefault(s string) string {
	if s == "" {
		return DefaultRolloutSet
	}
	return s
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// Apply parses the files as the manifests API does and rolls them out as
// one revision of the set.
func (s *Rollout) Apply(ctx context.Context, r *rolloutapi.ApplyRequest) (*rolloutapi.ApplyResponse, error) {
	set := setOrDefault(r.Applyset)
	if err := spec.ValidateName("apply set", set); err != nil {
		return nil, err
	}
	objs, err := parseFiles(requestFiles(nil, "", "", r.Files), r.Namespace)
	if err != nil {
		return nil, err
	}
	commit := ""
	if r.Source != "" && filepath.IsAbs(r.Source) {
		commit = desired.GitCommit(r.Source)
	}
	var restarted map[spec.Key]spec.Key
	if s.Manifests != nil { // before the rollout, while the node holds the old containers
		restarted = s.Manifests.restartedTasks(ctx, objs, s.Manifests.recreatedContainers(ctx, objs, set))
	}
	out, err := s.Engine.Apply(ctx, rollout.Request{Set: set, Objects: objs, Source: r.Source, Commit: commit,
		Timeout: ms(r.TimeoutMs), MinReady: ms(r.MinReadyMs)})
	if err != nil {
		return nil, err
	}
	if !out.Unchanged {
		out.Results = withRestarts(out.Results, restarted)
	}
	return s.outcomeToAPI(out), nil
}

// Undo rolls the set back to an earlier revision.
func (s *Rollout) Undo(ctx context.Context, r *rolloutapi.UndoRequest) (*rolloutapi.ApplyResponse, error) {
	out, err := s.Engine.Undo(ctx, setOrDefault(r.Applyset), r.ToRevision, ms(r.TimeoutMs), ms(r.MinReadyMs))
	if err != nil {
		return nil, err
	}
	return s.outcomeToAPI(out), nil
}

// History lists the kept revisions of one set or of every set.
func (s *Rollout) History(ctx context.Context, r *rolloutapi.HistoryRequest) (*rolloutapi.HistoryResponse, error) {
	sets := []string{r.Applyset}
	if r.Applyset == "" {
		sets = s.Revisions.Sets()
	}
	resp := &rolloutapi.HistoryResponse{}
	for _, set := range sets {
		hist, err := s.Revisions.History(set)
		if err != nil {
			return nil, err
		}
		cur, _ := s.Revisions.Current(set)
		for _, rev := range hist {
			resp.Revisions = append(resp.Revisions, revisionToAPI(rev, rev.Number == cur.Number))
		}
	}
	return resp, nil
}

func revisionToAPI(r desired.RolloutRevision, current bool) *rolloutapi.Revision {
	a := &rolloutapi.Revision{Set: r.Set, Number: r.Number, Hash: r.Hash, Source: r.Source, Commit: r.Commit,
		State: r.State, Reason: r.Reason, Objects: int32(len(r.Objects)), Current: current}
	if !r.Time.IsZero() {
		a.Time = timestamppb.New(r.Time)
	}
	if !r.FinishedAt.IsZero() {
		a.Finished = timestamppb.New(r.FinishedAt)
	}
	return a
}

func (s *Rollout) outcomeToAPI(o rollout.Outcome) *rolloutapi.ApplyResponse {
	cur, _ := s.Revisions.Current(o.Revision.Set)
	resp := &rolloutapi.ApplyResponse{
		Revision:  revisionToAPI(o.Revision, o.Revision.Number != 0 && cur.Number == o.Revision.Number),
		Unchanged: o.Unchanged, Failed: o.Failed, Reason: o.Reason, RolledBackTo: o.RolledBackTo,
		RollbackReady: o.RollbackReady, ReadyMs: o.ReadyTook.Milliseconds(), RollbackMs: o.RollbackTook.Milliseconds(),
	}
	if o.Failed {
		resp.Object = refToAPI(o.Object)
	}
	for _, res := range o.Results {
		resp.Results = append(resp.Results, resultToAPI(res))
	}
	return resp
}
