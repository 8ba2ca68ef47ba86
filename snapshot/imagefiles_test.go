package snapshot

import (
	"reflect"
	"testing"
)

func TestImageFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mounts []Mount
		dir    string
		ro     []Mount
		ok     bool
	}{
		{"bind is read in place", []Mount{{Type: "bind", Source: "/s/1/fs", Options: []string{"rbind", "rw"}}}, "/s/1/fs", nil, true},
		{"one lower is read in place", []Mount{{Type: "overlay", Source: "overlay", Options: []string{"workdir=/s/2/work", "upperdir=/s/2/fs", "lowerdir=/s/1/fs"}}}, "/s/1/fs", nil, true},
		{"a chain is a read-only overlay without the upper", []Mount{{Type: "overlay", Source: "overlay", Options: []string{"workdir=/s/3/work", "upperdir=/s/3/fs", "lowerdir=/s/2/fs:/s/1/fs"}}},
			"", []Mount{{Type: "overlay", Source: "overlay", Options: []string{"ro", "lowerdir=/s/2/fs:/s/1/fs"}}}, true},
		{"overlay without lowers is mounted as it is", []Mount{{Type: "overlay", Source: "overlay", Options: []string{"upperdir=/u"}}}, "", nil, false},
		{"two mounts are mounted as they are", []Mount{{Type: "bind", Source: "/a"}, {Type: "bind", Source: "/b", Target: "x"}}, "", nil, false},
		{"a mount with a target is mounted as it is", []Mount{{Type: "bind", Source: "/a", Target: "x"}}, "", nil, false},
		{"another type is mounted as it is", []Mount{{Type: "btrfs", Source: "/dev/x"}}, "", nil, false},
		{"none", nil, "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, ro, ok := ImageFiles(tc.mounts)
			if dir != tc.dir || !reflect.DeepEqual(ro, tc.ro) || ok != tc.ok {
				t.Fatalf("ImageFiles = %q, %v, %v; want %q, %v, %v", dir, ro, ok, tc.dir, tc.ro, tc.ok)
			}
		})
	}
}
