package span

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRecorder(t *testing.T) {
	for _, tc := range []struct {
		name string
		add  []Span
		want []Span
	}{
		{"none", nil, nil},
		{"in the order they end", []Span{{"b", 2}, {"a", 1}}, []Span{{"b", 2}, {"a", 1}}},
		{"same name adds up", []Span{{"mount", 2}, {"x", 1}, {"mount", 3}}, []Span{{"mount", 5}, {"x", 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			for _, s := range tc.add {
				r.Add(s.Name, s.Dur)
			}
			got := r.Spans()
			if len(got) != len(tc.want) {
				t.Fatalf("Spans() = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("Spans()[%d] = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestStartWithoutRecorderIsANop(t *testing.T) {
	Start(context.Background(), "x")() // must not panic
	var r *Recorder
	r.Add("x", time.Second) // nor on a nil Recorder
	if r.Spans() != nil {
		t.Error("nil Recorder has spans")
	}
}

func TestLog(t *testing.T) {
	r := New()
	ctx := With(context.Background(), r)
	end := Start(ctx, "step")
	end()
	if From(ctx) != r {
		t.Fatal("From does not return the Recorder With stored")
	}
	var buf bytes.Buffer
	Log(ctx, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), r, "method", "m")
	if buf.Len() != 0 {
		t.Errorf("logged above debug: %s", buf.String())
	}
	Log(ctx, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), r, "method", "m")
	for _, want := range []string{"msg=spans", "method=m", "total=", "step="} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log line %q lacks %s", buf.String(), want)
		}
	}
}
