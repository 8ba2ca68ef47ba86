package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	eventsapi "berth.dev/berth/api/events/v1"
	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

// watchResync is how often get -w lists again with no event: a status
// change the controllers record without publishing an event (a restart
// count) still shows within it.
const watchResync = 2 * time.Second

// watchSettle gathers the burst of events one change makes (a task's
// exit, its restart, the status) into one listing.
const watchSettle = 100 * time.Millisecond

// watchPrinter prints get's tables and, when watching, a row per change.
// It renders the columns itself, as tabwriter would, so that the rows
// printed later line up under the header printed first.
type watchPrinter struct {
	out          io.Writer
	withNS, wide bool
	widths       map[string][]int    // per kind, once its header is out
	last         map[string][]string // per kind/namespace/name, the row last printed
	order        []string            // keys of last, in the order first seen
	kindOf       map[string]string
	printedAny   bool
	// jsonLines prints each object as one line of JSON instead of rows;
	// events wraps each in {"type", "object"}.
	jsonLines, events bool
	lastJSON          map[string][]byte
}

// watchEvent is one line of get -w -o json --output-watch-events.
type watchEvent struct {
	Type   string        `json:"type"`
	Object *listedObject `json:"object"`
}

// jsonLine prints o as one line (as an event of typ with events).
func (w *watchPrinter) jsonLine(typ string, o listedObject) error {
	var v any = o
	if w.events {
		v = watchEvent{Type: typ, Object: &o}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w.out, "%s\n", b)
	return err
}

// updateJSON prints the objects whose JSON changed, and those gone.
func (w *watchPrinter) updateJSON(objs []listedObject, first bool) error {
	if w.lastJSON == nil {
		w.lastJSON, w.kindOf = map[string][]byte{}, map[string]string{}
	}
	seen := map[string]bool{}
	for _, o := range objs {
		key := objectKey(o)
		seen[key] = true
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		prev, had := w.lastJSON[key]
		if had && bytes.Equal(prev, b) {
			continue
		}
		typ := "MODIFIED"
		if !had {
			typ = "ADDED"
			w.order = append(w.order, key)
		}
		w.lastJSON[key] = b
		if err := w.jsonLine(typ, o); err != nil {
			return err
		}
	}
	if first {
		return nil
	}
	var kept []string
	for _, key := range w.order {
		if seen[key] {
			kept = append(kept, key)
			continue
		}
		var o listedObject
		if err := json.Unmarshal(w.lastJSON[key], &o.obj); err == nil {
			if v, ok := o.obj["source"].(string); ok {
				o.source = v
			}
			if v, ok := o.obj["generation"].(float64); ok {
				o.generation = int64(v)
			}
			delete(o.obj, "source")
			delete(o.obj, "generation")
			if err := w.jsonLine("DELETED", o); err != nil {
				return err
			}
		}
		delete(w.lastJSON, key)
	}
	w.order = kept
	return nil
}

// objectKey identifies an object across listings (kind, namespace,
// name), so a row printed earlier can be compared with its new one.
func objectKey(o listedObject) string {
	return o.view.Kind + "/" + o.view.Metadata.Namespace + "/" + o.view.Metadata.Name
}

// printAll prints the first listing: a table per kind that has objects.
func (w *watchPrinter) printAll(kind string, objs []listedObject) error {
	if w.jsonLines {
		return w.updateJSON(objs, true)
	}
	if w.kindOf == nil {
		w.kindOf, w.widths = map[string]string{}, map[string][]int{}
	}
	for _, k := range tableKinds(kind) {
		var of []listedObject
		for _, o := range objs {
			if o.view.Kind == k {
				of = append(of, o)
			}
		}
		if len(of) == 0 {
			continue
		}
		header, rows := tableRows(spec.Kind(k), of, w.withNS, w.wide)
		if w.printedAny {
			fmt.Fprintln(w.out)
		}
		w.printedAny = true
		// Widths are fixed from the first listing (and grown by a row that
		// outgrows them), so later rows align under the header without
		// reprinting the table.
		widths := make([]int, len(header))
		for _, r := range append([][]string{header}, rows...) {
			for i, c := range r {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
		w.widths[k] = widths
		if err := w.line(k, header); err != nil {
			return err
		}
		for i, r := range rows {
			w.remember(of[i], r)
			if err := w.line(k, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// remember keeps the row last printed for o and the order objects were
// first seen in, so deletions are reported in a stable order.
func (w *watchPrinter) remember(o listedObject, row []string) {
	key := objectKey(o)
	if _, ok := w.last[key]; !ok {
		w.order = append(w.order, key)
	}
	w.last[key], w.kindOf[key] = row, o.view.Kind
}

// line writes one row padded to the kind's column widths (3 spaces
// between columns, the last unpadded), widening a column a row outgrows.
func (w *watchPrinter) line(kind string, row []string) error {
	widths := w.widths[kind]
	var b strings.Builder
	for i, c := range row {
		b.WriteString(c)
		if i == len(row)-1 {
			break
		}
		if i < len(widths) {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+3))
		}
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w.out, b.String())
	return err
}

// update prints the row of each object whose row changed (AGE aside) and
// a last "Deleted" row for each object no longer listed.
func (w *watchPrinter) update(kind string, objs []listedObject) error {
	if w.jsonLines {
		return w.updateJSON(objs, false)
	}
	seen := map[string]bool{}
	for _, k := range tableKinds(kind) {
		for _, o := range objs {
			if o.view.Kind != k {
				continue
			}
			header, rows := tableRows(spec.Kind(k), []listedObject{o}, w.withNS, w.wide)
			key := objectKey(o)
			seen[key] = true
			if prev, ok := w.last[key]; ok && sameRow(header, prev, rows[0]) {
				continue
			}
			if _, ok := w.widths[k]; !ok {
				widths := make([]int, len(header))
				for i, c := range header {
					widths[i] = utf8.RuneCountInString(c)
				}
				w.widths[k] = widths
				if w.printedAny {
					fmt.Fprintln(w.out)
				}
				w.printedAny = true
				if err := w.line(k, header); err != nil {
					return err
				}
			}
			w.remember(o, rows[0])
			if err := w.line(k, rows[0]); err != nil {
				return err
			}
		}
	}
	var kept []string
	for _, key := range w.order {
		if seen[key] {
			kept = append(kept, key)
			continue
		}
		row := append([]string(nil), w.last[key]...)
		ready := 1
		if w.withNS {
			ready = 2
		}
		// A vanished object gets one last row, READY "Deleted", as
		// kubectl get -w shows a deletion; then it is forgotten.
		row[ready] = "Deleted"
		if err := w.line(w.kindOf[key], row); err != nil {
			return err
		}
		delete(w.last, key)
	}
	w.order = kept
	return nil
}

// sameRow compares two rows but for their AGE column, which changes by
// itself.
func sameRow(header, a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if header[i] != "AGE" && a[i] != b[i] {
			return false
		}
	}
	return true
}

// watch lists again after each event of the namespace (and every
// watchResync) and prints what changed, until ctx ends.
func (w *watchPrinter) watch(ctx context.Context, g *globals, svc manifestsapi.ManifestsService, req *manifestsapi.GetRequest) error {
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// Events only wake the loop; what is printed comes from a fresh Get,
	// so a lost or coalesced event costs latency, never a wrong row.
	var filters []string
	if !req.AllNamespaces {
		filters = []string{"namespace==" + req.Namespace}
	}
	stream, err := eventsapi.NewEventsClient(c).Subscribe(ctx, &eventsapi.SubscribeRequest{Filters: filters})
	if err != nil {
		return err
	}
	poke := make(chan struct{}, 1)
	streamErr := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				streamErr <- err
				return
			}
			// A full poke channel already holds a wake-up: events are
			// coalesced, one listing per burst.
			select {
			case poke <- struct{}{}:
			default:
			}
		}
	}()
	tick := time.NewTicker(watchResync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil // interrupted: the normal end
		case err := <-streamErr:
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("berthd ended the watch (shutting down)")
			}
			return fmt.Errorf("watch: %w", err)
		case <-poke:
			select {
			case <-time.After(watchSettle):
			case <-ctx.Done():
				return nil
			}
		case <-tick.C:
		}
		resp, err := svc.Get(ctx, req)
		var objs []listedObject
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			if objs, err = decodeObjects(resp.Objects); err != nil {
				return err
			}
		case errdefs.IsNotFound(errgrpc.ToNative(err)):
			// get -w KIND NAME of an object deleted: its Deleted row.
		default:
			return err
		}
		if err := w.update(req.Kind, objs); err != nil {
			return err
		}
	}
}
