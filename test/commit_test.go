package test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/test/harness"
)

// commitScript makes one change of each kind in a busybox container: a new
// file, a deletion, a chmod, a hard link to a file of the image, a symlink.
const commitScript = `set -e
echo hello > /root/new.txt
rm /etc/group
chmod 600 /etc/passwd
ln /bin/busybox /usr/busybox-hl
ln -s /root/new.txt /tmp/sym`

// commitChanges are the layer's entries other than directories, as
// `berth snapshot diff --list` prints them: exactly what the script did
// (the hard link copies its target into the layer, as overlayfs does).
var commitChanges = []string{
	"f 755 bin/busybox",
	"D etc/group",
	"f 600 etc/passwd",
	"f 644 root/new.txt",
	"l 777 tmp/sym -> /root/new.txt",
	"h 755 usr/busybox-hl => bin/busybox",
}

// checkScript prints what the new image must show.
const checkScript = `cat /root/new.txt
test -e /etc/group || echo group-gone
stat -c %a /etc/passwd
[ "$(stat -c %i /bin/busybox)" = "$(stat -c %i /usr/busybox-hl)" ] && echo linked
readlink /tmp/sym
echo "$COMMITTED"`

const checkOutput = "hello\ngroup-gone\n600\nlinked\n/root/new.txt\nyes\n"

var layerLine = regexp.MustCompile(`layer (sha256:[0-9a-f]{64}) `)

// TestCommit: a container's changes become the last layer of a new image
// that runs with exactly those changes, deletion included, on each
// snapshotter; the same changes give the same layer digest with
// --source-date-epoch.
func TestCommit(t *testing.T) {
	d := runDaemon(t)
	for _, sn := range []string{"overlayfs", "native"} {
		t.Run(sn, func(t *testing.T) { testCommit(t, d, sn) })
	}
}

func testCommit(t *testing.T, d *harness.Daemon, sn string) {
	var layers []string
	for _, id := range []string{"commit-a-" + sn, "commit-b-" + sn} {
		if r := d.CLI("run", "--snapshotter", sn, "busybox:latest", id, "sh", "-c", commitScript); r.ExitCode != 0 {
			t.Fatalf("run %s: %s", id, r)
		}
		t.Cleanup(func() { d.CLI("container", "rm", id) })

		var diff struct {
			Entries  int      `json:"entries"`
			FastPath bool     `json:"fastPath"`
			Changes  []string `json:"changes"`
		}
		out := d.MustCLI(t, "snapshot", "--snapshotter", sn, "diff", "--list", "-o", "json", id)
		if err := json.Unmarshal([]byte(out), &diff); err != nil {
			t.Fatalf("snapshot diff -o json: %v\n%s", err, out)
		}
		var files []string
		for _, c := range diff.Changes {
			if !strings.HasPrefix(c, "d ") {
				files = append(files, c)
			}
		}
		if !slices.Equal(files, commitChanges) {
			t.Errorf("%s: layer entries (directories aside)\n%s\nwant\n%s", id, strings.Join(files, "\n"), strings.Join(commitChanges, "\n"))
		}
		if want := sn == "overlayfs"; diff.FastPath != want {
			t.Errorf("%s: fastPath %v, want %v", id, diff.FastPath, want)
		}

		ref := "committed/" + id + ":v1"
		r := d.CLI("container", "commit", "--source-date-epoch", "1700000000",
			"--change", "ENV COMMITTED=yes", "--change", `CMD ["sh", "-c", "echo default-cmd"]`, "-m", "test commit", id, ref)
		if r.ExitCode != 0 {
			t.Fatalf("commit %s: %s", id, r)
		}
		m := layerLine.FindStringSubmatch(r.Stderr)
		if m == nil {
			t.Fatalf("commit printed no layer digest: %s", r)
		}
		layers = append(layers, m[1])

		run := id + "-check"
		r = d.CLI("run", "--rm", "--snapshotter", sn, ref, run, "sh", "-c", checkScript)
		if r.ExitCode != 0 || r.Stdout != checkOutput {
			t.Errorf("run of the committed image: got %q (exit %d), want %q\n%s", r.Stdout, r.ExitCode, checkOutput, r)
		}
		// The config's CMD came from --change, the rest from busybox.
		if r := d.CLI("run", "--rm", "--snapshotter", sn, ref, run+"-cmd"); r.ExitCode != 0 || r.Stdout != "default-cmd\n" {
			t.Errorf("run of the committed image's CMD: %s", r)
		}
	}
	if layers[0] != layers[1] {
		t.Errorf("the same changes in two containers gave layers %s and %s", layers[0], layers[1])
	}
}
