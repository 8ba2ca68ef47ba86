package node

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"berth.dev/berth/oci"
	"berth.dev/berth/policy"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestCheckPolicy: the node hands the policy what runc will mount (a link's
// target, not only its name), and the spec's uid and added capabilities.
func TestCheckPolicy(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "innocent")
	if err := os.Symlink(state, link); err != nil {
		t.Fatal(err)
	}
	no := false
	pol, err := policy.Compile(policy.Config{Default: policy.Entry{AllowRootUser: &no, AllowAddedCapabilities: &no}}, []string{state}, filepath.EvalSymlinks)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{opts: Options{Policy: pol}}
	bindOf := func(src string) ContainerSettings {
		return ContainerSettings{Settings: oci.Settings{Mounts: []oci.Mount{{Type: oci.MountBind, Source: src, Target: "/x"}, {Type: oci.MountTmpfs, Target: "/"}}}}
	}
	var v *policy.Violation
	if err := n.CheckPolicy("default", bindOf(link)); !errors.As(err, &v) || v.Key != "policy.default.protectedPaths" {
		t.Errorf("bind of a link to the state dir: %v, want a protectedPaths violation", err)
	}
	if err := n.CheckPolicy("default", bindOf(dir+"/other")); err != nil {
		t.Errorf("bind beside it: %v", err)
	}
	sp := &specs.Spec{Process: &specs.Process{User: specs.User{UID: 1000}, Capabilities: &specs.LinuxCapabilities{Bounding: oci.DefaultCapabilities()}}}
	if err := n.checkSpecPolicy("default", oci.Settings{}, sp); err != nil {
		t.Errorf("uid 1000 with the default capabilities: %v", err)
	}
	sp.Process.Capabilities.Ambient = []string{"CAP_SYS_ADMIN"}
	if err := n.checkSpecPolicy("default", oci.Settings{}, sp); !errors.As(err, &v) || v.Key != "policy.default.allowAddedCapabilities" {
		t.Errorf("added CAP_SYS_ADMIN: %v, want an allowAddedCapabilities violation", err)
	}
	sp.Process.Capabilities.Ambient = nil
	sp.Process.User.UID = 0
	if err := n.checkSpecPolicy("default", oci.Settings{}, sp); !errors.As(err, &v) || v.Key != "policy.default.allowRootUser" {
		t.Errorf("uid 0: %v, want an allowRootUser violation", err)
	}
	if err := (&Node{}).CheckPolicy("default", bindOf("/")); err != nil {
		t.Errorf("a node with no policy refused: %v", err)
	}
}
