package oci

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestRuntime(t *testing.T) {
	installed := func(names ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, n := range names {
				if n == name {
					if strings.HasPrefix(n, "/") {
						return n, nil
					}
					return "/usr/sbin/" + n, nil
				}
			}
			return "", exec.ErrNotFound
		}
	}
	for _, tc := range []struct {
		name      string
		installed []string
		want      string
		wantErr   error
	}{
		{name: "", installed: []string{"runc"}, want: "/usr/sbin/runc"},
		{name: "runc", installed: []string{"runc"}, want: "/usr/sbin/runc"},
		{name: "crun", installed: []string{"runc", "crun"}, want: "/usr/sbin/crun"},
		{name: "crun", installed: []string{"runc"}, wantErr: errdefs.ErrNotFound},
		{name: "", wantErr: errdefs.ErrNotFound},
		{name: "/opt/bin/runc-wrapper", installed: []string{"/opt/bin/runc-wrapper"}, want: "/opt/bin/runc-wrapper"},
		{name: "/opt/bin/missing", wantErr: errdefs.ErrNotFound},
		{name: "youki", installed: []string{"youki"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "bin/runc", wantErr: errdefs.ErrInvalidArgument},
		{name: "/opt/../runc", wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name+"/"+strings.Join(tc.installed, ","), func(t *testing.T) {
			got, err := Runtime(tc.name, installed(tc.installed...))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %q, %v; want %v", got, err, tc.wantErr)
				}
				if tc.wantErr == errdefs.ErrNotFound && !strings.Contains(err.Error(), "not") {
					t.Errorf("error %q does not say the runtime is missing", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
