package oci

import "testing"

// One rule for mount options, from a manifest (FromSpec) or the API.
func TestParseMount(t *testing.T) {
	for _, tc := range []struct {
		opts    []string
		ro      bool
		size    int64
		wantErr bool
	}{
		{nil, false, 0, false},
		{[]string{"ro"}, true, 0, false},
		{[]string{"rw"}, false, 0, false},
		{[]string{"size=16Mi"}, false, 16 << 20, false},
		{[]string{"rw", "size=1Ki"}, false, 1024, false},
		{[]string{"exec"}, false, 0, true},
		{[]string{"size=64Q"}, false, 0, true},
	} {
		m, err := ParseMount(MountTmpfs, "", "/tmp", false, tc.opts)
		if (err != nil) != tc.wantErr {
			t.Errorf("%v: err %v, want error %v", tc.opts, err, tc.wantErr)
			continue
		}
		if err == nil && (m.ReadOnly != tc.ro || m.SizeBytes != tc.size) {
			t.Errorf("%v: got ro=%v size=%d, want ro=%v size=%d", tc.opts, m.ReadOnly, m.SizeBytes, tc.ro, tc.size)
		}
		if err == nil {
			back, _ := ParseMount(MountTmpfs, "", "/tmp", false, MountOptions(m))
			if back != m {
				t.Errorf("%v: MountOptions does not read back: %+v != %+v", tc.opts, back, m)
			}
		}
	}
}
