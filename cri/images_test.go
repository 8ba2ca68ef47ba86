package cri

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestDisplay(t *testing.T) {
	for in, want := range map[string]string{
		"index.docker.io/library/busybox:latest": "docker.io/library/busybox:latest",
		"127.0.0.1:5000/library/busybox:1":       "127.0.0.1:5000/library/busybox:1",
		"registry.k8s.io/pause:3.10":             "registry.k8s.io/pause:3.10",
	} {
		if got := display(in); got != want {
			t.Errorf("display(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsHex(t *testing.T) {
	for in, want := range map[string]bool{"abc123": true, "": false, "ABC": false, "xyz": false,
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef":  true,
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0": false} {
		if got := isHex(in); got != want {
			t.Errorf("isHex(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestKeychainFor(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte("u:p"))
	for _, tc := range []struct {
		name, ref  string
		auth       *runtime.AuthConfig
		registry   string
		wantUser   string
		wantErr    bool
		otherAnons bool
	}{
		{name: "user password", ref: "reg.example/a:1", auth: &runtime.AuthConfig{Username: "u", Password: "p"}, registry: "reg.example", wantUser: "u"},
		{name: "auth field", ref: "reg.example/a:1", auth: &runtime.AuthConfig{Auth: basic}, registry: "reg.example", wantUser: "u"},
		{name: "docker hub server address", ref: "busybox", auth: &runtime.AuthConfig{Username: "d", ServerAddress: "https://index.docker.io/v1/"}, registry: "index.docker.io", wantUser: "d"},
		{name: "bad auth", ref: "reg.example/a:1", auth: &runtime.AuthConfig{Auth: "%%%"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kc, err := keychainFor(tc.ref, tc.auth)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			reg, _ := name.NewRegistry(tc.registry)
			a, err := kc.Resolve(reg)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _ := a.Authorization()
			if cfg.Username != tc.wantUser {
				t.Errorf("user for %s: got %q, want %q", tc.registry, cfg.Username, tc.wantUser)
			}
			other, _ := name.NewRegistry("elsewhere.example")
			if a, _ := kc.Resolve(other); a != authn.Anonymous {
				t.Errorf("credentials handed to another registry")
			}
		})
	}
}
