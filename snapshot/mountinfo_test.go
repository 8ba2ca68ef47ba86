package snapshot

import "testing"

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/run/berth/.tmp/rootfs-1`: "/run/berth/.tmp/rootfs-1",
		`/a\040b/c`:                "/a b/c",
		`/tab\011x\134y`:           "/tab\tx\\y",
		`/trailing\04`:             `/trailing\04`,
		`/not\999octal`:            `/not\999octal`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMountsUnder_Proc(t *testing.T) {
	ms, err := MountsUnder("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[len(ms)-1] != "/proc" {
		t.Errorf("mounts under /proc: got %v, want /proc last", ms)
	}
}
