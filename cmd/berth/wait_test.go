package main

import (
	"strings"
	"testing"

	"berth.dev/berth/spec"
)

func TestParseFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		ctype  spec.ConditionType
		status spec.ConditionStatus
		err    string
	}{
		{"condition=Ready", spec.ConditionReady, spec.ConditionTrue, ""},
		{"condition=ready", spec.ConditionReady, spec.ConditionTrue, ""},
		{"condition=Ready=False", spec.ConditionReady, spec.ConditionFalse, ""},
		{"condition=Degraded=true", spec.ConditionDegraded, spec.ConditionTrue, ""},
		{"Ready", "", "", "want condition=TYPE"},
		{"condition=", "", "", "want condition=TYPE"},
		{"condition=Healthy", "", "", `"Healthy" is not a condition`},
		{"condition=Ready=maybe", "", "", "True or False"},
	}
	for _, tt := range tests {
		ct, st, err := parseFor(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseFor(%q) error %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || ct != tt.ctype || st != tt.status):
			t.Errorf("parseFor(%q) = %q %q %v, want %q %q", tt.in, ct, st, err, tt.ctype, tt.status)
		}
	}
}

func TestKindArg(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]spec.Kind{"task": spec.KindTask, "Tasks": spec.KindTask, "container": spec.KindContainer, "images": spec.KindImage, "network": spec.KindNetwork} {
		if got, err := kindArg(in); err != nil || got != want {
			t.Errorf("kindArg(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := kindArg("pod"); err == nil {
		t.Error("kindArg(pod): no error")
	}
}
