package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	eventsapi "berth.dev/berth/api/events/v1"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func init() { extraCommands = append(extraCommands, newEventsCmd) }

// eventView is one event as -o json prints it, one object per line.
//
// The payload stays raw JSON: events are containerd's topics with
// payloads of their own shapes, and re-encoding them through a Go type
// would drop fields this CLI does not know.
type eventView struct {
	Timestamp time.Time       `json:"timestamp"`
	Namespace string          `json:"namespace,omitempty"`
	Topic     string          `json:"topic"`
	Event     json.RawMessage `json:"event,omitempty"`
}

func newEventsCmd(g *globals) *cobra.Command {
	var filters []string
	var output string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print events as they happen",
		Long: `Print berthd's events as they happen, until interrupted.

Filters use containerd's syntax; each --filter is an alternative, and the
comma-separated conditions inside one must all hold:

  berth events --filter topic==/tasks/exit
  berth events --filter 'namespace==edge,topic~=/images/'
  berth events --filter event.id==web

Events of every namespace are shown unless a filter names one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Checked before dialling: a stream that fails only at its
			// first event would leave a bad -o unnoticed until then.
			if output != "table" && output != "json" && output != "yaml" {
				return fmt.Errorf("unknown output format %q (table, json, yaml)", output)
			}
			ctx := cmd.Context()
			c, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			// Filters are evaluated by berthd, so a quiet filter costs no
			// traffic; the CLI prints what arrives.
			stream, err := eventsapi.NewEventsClient(c).Subscribe(ctx, &eventsapi.SubscribeRequest{Filters: filters})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for {
				env, err := stream.Recv()
				switch {
				case ctx.Err() != nil:
					return nil // interrupted: the normal end
				case errors.Is(err, io.EOF):
					return nil // berthd ended the stream (shutting down)
				case err != nil:
					return fmt.Errorf("receive events: %w", err)
				}
				if err := printEvent(w, output, env); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "filter, e.g. topic==/tasks/exit (repeatable: any may match)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json (one object per line)|yaml (one document per event)")
	return cmd
}

// printEvent writes one line: TIME NAMESPACE TOPIC JSON, or a JSON object.
//
// A payload that is not valid JSON is left out rather than printed raw:
// -o json must stay one parseable object per line.
func printEvent(w io.Writer, format string, env *eventsapi.Envelope) error {
	v := eventView{Timestamp: env.Timestamp.AsTime(), Namespace: env.Namespace, Topic: env.Topic}
	if len(env.Event) > 0 && json.Valid(env.Event) {
		v.Event = env.Event
	}
	switch format {
	case "json":
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	// YAML documents are separated by "---" so the stream is one valid
	// multi-document file however long it runs.
	case "yaml":
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "---\n%s", data)
		return err
	}
	// The table shows "-" for an event of no namespace (berthd's own),
	// keeping four columns for cut and awk.
	ns := v.Namespace
	if ns == "" {
		ns = "-"
	}
	payload := string(v.Event)
	if payload == "" {
		payload = "{}"
	}
	_, err := fmt.Fprintf(w, "%s %s %s %s\n", v.Timestamp.Format(time.RFC3339Nano), ns, v.Topic, payload)
	return err
}
