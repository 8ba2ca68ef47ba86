package spec

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestValidate_UpdatePolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ref string
		pull      PullPolicy
		p         UpdatePolicy
		want      string // "" for valid
	}{
		{"digest mode", "reg.example/app:1", "", UpdatePolicy{Mode: UpdateDigest, Interval: "6h"}, ""},
		{"defaults", "reg.example/app:1", "", UpdatePolicy{Mode: UpdateDigest}, ""},
		{"no mode", "reg.example/app:1", "", UpdatePolicy{}, "spec.updatePolicy.mode: missing"},
		{"unknown mode", "reg.example/app:1", "", UpdatePolicy{Mode: "Semver"}, `spec.updatePolicy.mode: "Semver" is not Digest`},
		{"interval without unit", "reg.example/app:1", "", UpdatePolicy{Mode: UpdateDigest, Interval: "60"}, "spec.updatePolicy.interval"},
		{"interval too short", "reg.example/app:1", "", UpdatePolicy{Mode: UpdateDigest, Interval: "10ms"}, "spec.updatePolicy.interval: 10ms is less than 1s"},
		{"timeout zero", "reg.example/app:1", "", UpdatePolicy{Mode: UpdateDigest, Timeout: "0s"}, "spec.updatePolicy.timeout: 0s is not positive"},
		{"pinned ref", "reg.example/app@sha256:" + strings.Repeat("a", 64), "", UpdatePolicy{Mode: UpdateDigest}, "pinned to a digest"},
		{"pull never", "reg.example/app:1", PullNever, UpdatePolicy{Mode: UpdateDigest}, "pullPolicy Never"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			o := Default(Object{APIVersion: APIVersion, Kind: KindImage, Metadata: Metadata{Name: "app"},
				Spec: ImageSpec{Ref: tt.ref, PullPolicy: tt.pull, UpdatePolicy: &p}})
			err := Validate(o)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("got no error, want %s", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("got error\n%v\nwant it to contain\n%s", err, tt.want)
			}
		})
	}
	if got := (UpdatePolicy{Mode: UpdateDigest}).IntervalValue(); got != 6*time.Hour {
		t.Errorf("default interval: %s", got)
	}
	if got := (UpdatePolicy{Mode: UpdateDigest, Timeout: "5s"}).TimeoutValue(); got != 5*time.Second {
		t.Errorf("timeout: %s", got)
	}
}

// An Image without updatePolicy hashes as before the field existed, so an
// upgrade recreates nothing.
func TestHash_UpdatePolicyAbsentUnchanged(t *testing.T) {
	t.Parallel()
	o := Default(Object{APIVersion: APIVersion, Kind: KindImage, Metadata: Metadata{Name: "app"}, Spec: ImageSpec{Ref: "reg.example/app:1"}})
	with := o
	is := o.Spec.(ImageSpec)
	is.UpdatePolicy = &UpdatePolicy{Mode: UpdateDigest}
	with.Spec = is
	if Hash(o) == Hash(with) {
		t.Error("updatePolicy does not change the hash")
	}
	// Absent, it is not in the hashed bytes at all: the hash of every Image
	// written before the field is what it was.
	if b, _ := json.Marshal(o.Spec); strings.Contains(string(b), "updatePolicy") {
		t.Errorf("an absent updatePolicy is serialised: %s", b)
	}
}
