package spec

import "testing"

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
