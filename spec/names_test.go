package spec

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestIsManifestFile(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"web.yaml": true, "web.yml": true, "web.json": true,
		".web.yaml": false, "web.yaml~": false, ".web.yaml.swp": false, "web.yaml.swp": false,
		"web.yaml.bak": false, "#web.yaml#": false, ".#web.yaml": false, "4913": false,
		"web.txt": false, "": false, "images": false,
	}
	for name, want := range tests {
		if got := IsManifestFile(name); got != want {
			t.Errorf("IsManifestFile(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"default", true}, {"a", true}, {"a-1", true}, {strings.Repeat("a", 63), true},
		{"", false}, {"..", false}, {"a/b", false}, {"-a", false}, {"a-", false}, {"A", false},
		{strings.Repeat("a", 64), false},
	} {
		err := ValidateName("namespace", tc.s)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q): %v, want ok=%v", tc.s, err, tc.ok)
		}
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Errorf("ValidateName(%q): %v is not InvalidArgument", tc.s, err)
		}
	}
}

func TestValidateNamespace(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"default", true}, {CRINamespace, true}, {"k8s", true},
		{"k8s.io.x", false}, {"a.b", false}, {".", false}, {"..", false}, {"", false}, {"K8s.io", false},
	} {
		err := ValidateNamespace(tc.s)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateNamespace(%q): %v, want ok=%v", tc.s, err, tc.ok)
		}
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Errorf("ValidateNamespace(%q): %v is not InvalidArgument", tc.s, err)
		}
	}
}

func TestParseKind(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Kind{
		"": "", "all": "", "ALL": "", "image": KindImage, "Images": KindImage, "img": KindImage,
		"container": KindContainer, "ctr": KindContainer, "tasks": KindTask, "Task": KindTask,
		"net": KindNetwork, "networks": KindNetwork,
	} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q): got %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"pods", "imagess", "task.spec"} {
		if _, err := ParseKind(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseKind(%q): got %v, want InvalidArgument", in, err)
		}
	}
}
