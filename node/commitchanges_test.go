package node

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestApplyChanges(t *testing.T) {
	base := func() ocispec.ImageConfig {
		return ocispec.ImageConfig{Env: []string{"PATH=/bin", "A=1"}, Cmd: []string{"sh"}}
	}
	tests := []struct {
		name    string
		changes []string
		want    func(c *ocispec.ImageConfig)
		wantErr bool
	}{
		{"cmd exec form", []string{`CMD ["echo", "hi"]`}, func(c *ocispec.ImageConfig) { c.Cmd = []string{"echo", "hi"} }, false},
		{"cmd shell form", []string{`CMD echo hi`}, func(c *ocispec.ImageConfig) { c.Cmd = []string{"/bin/sh", "-c", "echo hi"} }, false},
		{"entrypoint", []string{`entrypoint ["/bin/app"]`}, func(c *ocispec.ImageConfig) { c.Entrypoint = []string{"/bin/app"} }, false},
		{"env replaces and adds", []string{`ENV A=2 B="x y"`}, func(c *ocispec.ImageConfig) { c.Env = []string{"PATH=/bin", "A=2", "B=x y"} }, false},
		{"env legacy", []string{`ENV C hello world`}, func(c *ocispec.ImageConfig) { c.Env = append(c.Env, "C=hello world") }, false},
		{"workdir user stopsignal", []string{"WORKDIR /srv", "USER 1000:1000", "STOPSIGNAL SIGINT"}, func(c *ocispec.ImageConfig) {
			c.WorkingDir, c.User, c.StopSignal = "/srv", "1000:1000", "SIGINT"
		}, false},
		{"label expose volume", []string{`LABEL a=b "c d"=e`, "EXPOSE 80 53/udp", `VOLUME ["/data"]`}, func(c *ocispec.ImageConfig) {
			c.Labels = map[string]string{"a": "b", "c d": "e"}
			c.ExposedPorts = map[string]struct{}{"80/tcp": {}, "53/udp": {}}
			c.Volumes = map[string]struct{}{"/data": {}}
		}, false},
		{"relative workdir", []string{"WORKDIR srv"}, nil, true},
		{"unknown", []string{"RUN rm -rf /"}, nil, true},
		{"no argument", []string{"CMD"}, nil, true},
		{"bad label", []string{"LABEL novalue"}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := base()
			err := ApplyChanges(&got, tc.changes)
			if tc.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := base()
			tc.want(&want)
			if d := cmp.Diff(want, got); d != "" {
				t.Error(d)
			}
		})
	}
}
