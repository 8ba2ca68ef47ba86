package oci

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestProcessArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"default", "cmd"}}
	cmdOnly := ocispec.ImageConfig{Cmd: []string{"sh"}}
	for _, tc := range []struct {
		name       string
		img        ocispec.ImageConfig
		entrypoint []string
		args       []string
		want       []string
		wantErr    bool
	}{
		{name: "image entrypoint and cmd", img: img, want: []string{"/entry", "default", "cmd"}},
		{name: "args replace cmd", img: img, args: []string{"x"}, want: []string{"/entry", "x"}},
		{name: "entrypoint override drops image cmd", img: img, entrypoint: []string{"/bin/sh"}, want: []string{"/bin/sh"}},
		{name: "entrypoint and args", img: img, entrypoint: []string{"/bin/sh"}, args: []string{"-c", "id"}, want: []string{"/bin/sh", "-c", "id"}},
		{name: "empty entrypoint clears it", img: img, entrypoint: []string{}, args: []string{"ls"}, want: []string{"ls"}},
		{name: "empty entrypoint and no args", img: img, entrypoint: []string{}, wantErr: true},
		{name: "cmd only image", img: cmdOnly, want: []string{"sh"}},
		{name: "cmd only image with args", img: cmdOnly, args: []string{"ls", "-l"}, want: []string{"ls", "-l"}},
		{name: "nothing at all", img: ocispec.ImageConfig{}, wantErr: true},
		{name: "empty args slice keeps entrypoint", img: img, args: []string{}, want: []string{"/entry"}},
		{name: "empty program", img: ocispec.ImageConfig{}, args: []string{""}, wantErr: true},
		{name: "NUL byte", img: ocispec.ImageConfig{}, args: []string{"a\x00b"}, wantErr: true},
		{name: "too long", img: ocispec.ImageConfig{}, args: []string{"sh", strings.Repeat("x", maxArgsBytes)}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processArgs(tc.img, Settings{Entrypoint: tc.entrypoint, Args: tc.args})
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %v, %v; want an invalid argument error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProcessEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		img     []string
		env     []string
		want    []string
		wantErr bool
	}{
		{name: "default PATH", want: []string{defaultPath}},
		{name: "image PATH kept", img: []string{"PATH=/bin", "A=1"}, want: []string{"PATH=/bin", "A=1"}},
		{name: "override by key in place", img: []string{"A=1", "PATH=/bin", "B=2"}, env: []string{"B=3", "A=x=y"},
			want: []string{"A=x=y", "PATH=/bin", "B=3"}},
		{name: "new keys appended", img: []string{"PATH=/bin"}, env: []string{"C=3"}, want: []string{"PATH=/bin", "C=3"}},
		{name: "container sets PATH", env: []string{"PATH=/x"}, want: []string{"PATH=/x"}},
		{name: "empty value", img: []string{"PATH=/bin", "A=1"}, env: []string{"A="}, want: []string{"PATH=/bin", "A="}},
		{name: "image duplicates collapse", img: []string{"PATH=/bin", "A=1", "A=2"}, want: []string{"PATH=/bin", "A=2"}},
		{name: "malformed image entries dropped", img: []string{"PATH=/bin", "NOVALUE", "=x"}, want: []string{"PATH=/bin"}},
		{name: "container entry without =", env: []string{"NOVALUE"}, wantErr: true},
		{name: "container entry without key", env: []string{"=v"}, wantErr: true},
		{name: "NUL byte", env: []string{"A=\x00"}, wantErr: true},
		{name: "over 1 MiB", env: []string{"BIG=" + strings.Repeat("x", maxEnvBytes)}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processEnv(ocispec.ImageConfig{Env: tc.img}, Settings{Env: tc.env})
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %v, %v; want an invalid argument error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProcessCwd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		img, set string
		want     string
		wantErr  bool
	}{
		{name: "default", want: "/"},
		{name: "image", img: "/app", want: "/app"},
		{name: "override", img: "/app", set: "/srv", want: "/srv"},
		{name: "trailing slash normalised", img: "/app/", want: "/app"},
		{name: "double slash normalised", img: "//app//x", want: "/app/x"},
		{name: "relative", img: "app", wantErr: true},
		{name: "relative override", set: "./app", wantErr: true},
		{name: "proc", img: "/proc", wantErr: true},
		{name: "under proc", img: "/proc/self/fd/7", wantErr: true},
		{name: "under proc override", set: "/proc/x", wantErr: true},
		{name: "dotdot into proc", img: "/app/../proc/x", wantErr: true},
		{name: "dotdot", img: "/app/..", wantErr: true},
		{name: "dot", img: "/app/./x", wantErr: true},
		{name: "procfoo is fine", img: "/procfoo", want: "/procfoo"},
		{name: "NUL", img: "/a\x00", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processCwd(ocispec.ImageConfig{WorkingDir: tc.img}, Settings{WorkingDir: tc.set})
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %q, %v; want an invalid argument error", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
