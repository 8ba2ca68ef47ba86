package server

import (
	"context"
	"errors"
	"fmt"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/desired"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ApplyManager is the manager recorded for objects applied through the
// API; it scopes prune to what `berth apply` applied.
const ApplyManager = "berth-apply"

// Manifests serves the declarative API: Apply and Delete record intent in
// the API source and return, the controllers do the work; Get, Describe
// and Diff join the desired state with what was observed.
type Manifests struct {
	Desired *desired.Store
	API     *desired.APISource
	DB      *observed.DB
	Recent  *observed.Recent
	// Node is asked for the tasks' state, which diff compares with the
	// Tasks given (a task lives in its shim, not in the database).
	Node node.Tasks
	// Snapshots lets diff see a container's missing snapshot, which the
	// reconciler would recreate; nil assumes it present.
	Snapshots node.Snapshots
}

var _ manifestsapi.ManifestsService = (*Manifests)(nil)

// requestFile is one manifest file of a request.
type requestFile struct {
	data      []byte
	name, dir string
}

// requestFiles accepts the older single-file fields beside the list, so
// a CLI from before multi-file apply still works against this berthd.
func requestFiles(data []byte, name, dir string, more []*manifestsapi.File) []requestFile {
	var fs []requestFile
	if len(data) > 0 || (name != "" && len(more) == 0) {
		fs = append(fs, requestFile{data: data, name: name, dir: dir})
	}
	for _, f := range more {
		fs = append(fs, requestFile{data: f.Data, name: f.File, dir: f.Dir})
	}
	return fs
}

// parseFiles parses and defaults every file's objects. Paths written in
// the objects (image sources, bind mount sources) are made absolute
// against the file's directory on the client, because the API source
// keeps no origin. Every error of every file is returned together, one
// per line, as errdefs.ErrInvalidArgument.
func parseFiles(files []requestFile, namespace string) ([]spec.Object, error) {
	var objs []spec.Object
	var errs spec.ErrorList
	for _, f := range files {
		parsed, err := spec.Parse(f.name, f.data)
		if err != nil {
			var l spec.ErrorList
			if errors.As(err, &l) {
				errs = append(errs, l...)
				continue
			}
			return nil, err
		}
		for _, o := range parsed {
			o.Origin.Dir = f.dir
			if o.Metadata.Namespace == "" {
				o.Metadata.Namespace = namespace // berth -n; Default fills in "default"
			}
			o = absolutePaths(spec.Default(o))
			if err := spec.Validate(o); err != nil {
				var l spec.ErrorList
				if errors.As(err, &l) {
					errs = append(errs, l...)
					continue
				}
				return nil, err
			}
			objs = append(objs, o)
		}
	}
	// A dependsOn cycle within the set: refused as berth validate does.
	// (A cycle through Tasks declared elsewhere is found by the
	// controller, which leaves them Degraded.)
	errs = append(errs, spec.CheckDependencies(objs)...)
	if len(errs) > 0 {
		// One error with one class: the list's own Unwrap would make the
		// wire error carry one detail per field error.
		return nil, fmt.Errorf("%s: %w", errs.Error(), errdefs.ErrInvalidArgument)
	}
	return objs, nil
}

// absolutePaths resolves relative paths of o against its Origin.Dir
// (spec.AbsolutePaths).
func absolutePaths(o spec.Object) spec.Object { return spec.AbsolutePaths(o) }

// applyScope checks an apply's set name and selector and returns the
// options they make, with the objects the selector keeps.
func applyScope(objs []spec.Object, prune, dryRun bool, applySet, selector string) ([]spec.Object, desired.ApplyOptions, error) {
	opts := desired.ApplyOptions{Prune: prune, DryRun: dryRun, Manager: ApplyManager, ApplySet: applySet}
	if applySet != "" {
		if err := spec.ValidateName("apply set", applySet); err != nil {
			return nil, opts, err
		}
	}
	sel, err := spec.ParseSelector(selector)
	if err != nil {
		return nil, opts, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	opts.Selector = sel
	if prune && applySet == "" && len(sel) == 0 {
		return nil, opts, desired.ErrPruneUnscoped
	}
	var kept []spec.Object
	for _, o := range objs {
		if sel.Matches(o.Metadata.Labels) {
			kept = append(kept, o)
		}
	}
	if len(kept) == 0 {
		// An empty set with prune would delete everything applied before:
		// too easy to do by accident (an empty directory, a wrong path).
		if len(objs) > 0 {
			return nil, opts, fmt.Errorf("no objects to apply: none of the %d matches the selector %q: %w", len(objs), selector, errdefs.ErrInvalidArgument)
		}
		return nil, opts, fmt.Errorf("no objects to apply: %w", errdefs.ErrInvalidArgument)
	}
	return kept, opts, nil
}

// Apply parses the request's files and applies their objects as one set.
//
// All files of one request are one set, parsed before anything is
// applied: a set is never half in force because its third file was bad.
// Apply returns when the intent is recorded (persisted in the API
// source), not when the node has converged; `berth apply --wait` watches
// the statuses for that.
func (s *Manifests) Apply(ctx context.Context, r *manifestsapi.ApplyRequest) (*manifestsapi.ApplyResponse, error) {
	objs, err := parseFiles(requestFiles(r.Data, r.File, r.Dir, r.Files), r.Namespace)
	if err != nil {
		return nil, err
	}
	objs, opts, err := applyScope(objs, r.Prune, r.DryRun, r.Applyset, r.Selector)
	if err != nil {
		return nil, err
	}
	// Before the apply, while the node still holds the old containers.
	restarted := s.restartedTasks(ctx, objs, s.recreatedContainers(ctx, objs, opts.ApplySet))
	results, err := s.API.Apply(ctx, objs, opts)
	if err != nil {
		return nil, err
	}
	results = withRestarts(results, restarted)
	resp := &manifestsapi.ApplyResponse{}
	for _, res := range results {
		resp.Results = append(resp.Results, resultToAPI(res))
	}
	return resp, nil
}

// resultToAPI passes the store's own words (created, configured,
// unchanged, pruned), which the CLI prints as kubectl does.
func resultToAPI(r desired.Result) *manifestsapi.ObjectResult {
	return &manifestsapi.ObjectResult{Ref: refToAPI(r.Key), Action: string(r.Action), Message: r.Message}
}

func refToAPI(k spec.Key) *manifestsapi.Ref {
	return &manifestsapi.Ref{Namespace: k.Namespace, Kind: string(k.Kind), Name: k.Name}
}

// ParseKind accepts a kind as people type it: image, images, Image, IMAGES.
// "all" and "" are the empty kind (every kind).
func ParseKind(s string) (spec.Kind, error) { return spec.ParseKind(s) }

// keyFromAPI validates the name and namespace before they reach a store,
// so a bad key is InvalidArgument and not a silent miss.
func keyFromAPI(r *manifestsapi.Ref) (spec.Key, error) {
	if r == nil || r.Name == "" {
		return spec.Key{}, fmt.Errorf("a reference needs a kind and a name: %w", errdefs.ErrInvalidArgument)
	}
	k, err := ParseKind(r.Kind)
	if err != nil {
		return spec.Key{}, err
	}
	if k == "" {
		return spec.Key{}, fmt.Errorf("a reference needs a kind (image, container or task): %w", errdefs.ErrInvalidArgument)
	}
	return spec.Key{Namespace: defaultNS(r.Namespace), Kind: k, Name: r.Name}, nil
}

// Delete removes objects applied through the API. An object a manifest
// file declares is not the API's to delete: the request fails, naming
// the file, and nothing is deleted.
func (s *Manifests) Delete(ctx context.Context, r *manifestsapi.DeleteRequest) (*manifestsapi.DeleteResponse, error) {
	var keys []spec.Key
	for _, ref := range r.Refs {
		k, err := keyFromAPI(ref)
		if err != nil {
			return nil, err
		}
		if e, ok := s.Desired.Get(k); ok && e.Source != desired.SourceAPI {
			return nil, fmt.Errorf("%s is declared by the manifest file %s: remove it there: %w", k, e.Source, errdefs.ErrFailedPrecondition)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("nothing to delete: %w", errdefs.ErrInvalidArgument)
	}
	results, err := s.API.Delete(ctx, keys)
	if err != nil {
		return nil, err
	}
	resp := &manifestsapi.DeleteResponse{}
	for _, res := range results {
		resp.Results = append(resp.Results, resultToAPI(res))
	}
	return resp, nil
}

// Sources lists the manifest sources with their revisions and errors.
//
// A source's error is the reason its objects may be older than its file:
// berth get prints it above the table so a broken file is never silent.
func (s *Manifests) Sources(ctx context.Context, r *manifestsapi.SourcesRequest) (*manifestsapi.SourcesResponse, error) {
	resp := &manifestsapi.SourcesResponse{}
	for _, st := range s.Desired.Sources() {
		resp.Sources = append(resp.Sources, sourceToAPI(st))
	}
	return resp, nil
}

func sourceToAPI(st desired.SourceStatus) *manifestsapi.Source {
	a := &manifestsapi.Source{Name: st.Name, Revision: st.Revision, Objects: int32(st.Objects)}
	if !st.Updated.IsZero() {
		a.Updated = timestamppb.New(st.Updated)
	}
	if st.Err != nil {
		a.Error = st.Err.Error()
		if !st.ErrTime.IsZero() {
			a.ErrorTime = timestamppb.New(st.ErrTime)
		}
	}
	return a
}
