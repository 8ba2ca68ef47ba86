package test

import (
	"strings"
	"testing"
)

// TestCLI_ExecUserName: exec -u takes a user name (and a group name),
// resolved in the running container's /etc/passwd and /etc/group as run -u
// does, as well as numbers; an unknown name fails naming it.
func TestCLI_ExecUserName(t *testing.T) {
	d := runDaemon(t)
	d.MustCLI(t, "run", "-d", "busybox:latest", "eu-box", "--", "sleep", "1000")
	waitStatus(t, d, "eu-box", "running")
	// A user made in the container after it started is found too: the
	// lookup reads the container's files as they are now.
	d.MustCLI(t, "exec", "eu-box", "--", "sh", "-c", "echo 'app:x:1234:1234::/tmp:/bin/sh' >>/etc/passwd; echo 'app:x:1234:' >>/etc/group")
	for _, tc := range []struct {
		name, user, want string
	}{
		{"name", "nobody", "uid=65534(nobody) gid=65534(nogroup)"},
		{"name of a user added at run time", "app", "uid=1234(app) gid=1234(app)"},
		{"name:group", "nobody:app", "uid=65534(nobody) gid=1234(app)"},
		{"uid:gid", "1234:65534", "uid=1234(app) gid=65534(nogroup)"},
		{"uid takes its passwd gid", "1234", "uid=1234(app) gid=1234(app)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.CLI("exec", "-u", tc.user, "eu-box", "--", "id")
			if r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, tc.want) {
				t.Errorf("exec -u %s: want %q\n%s", tc.user, tc.want, r)
			}
		})
	}
	r := d.CLI("exec", "-u", "nosuchuser", "eu-box", "--", "id")
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, `user "nosuchuser": no such user in the image's /etc/passwd`) {
		t.Errorf("want exit 2 naming the user\n%s", r)
	}
	r = d.CLI("task", "exec", "-u", "nobody", "eu-box", "--", "id", "-un")
	if r.ExitCode != 0 || r.Stdout != "nobody\n" {
		t.Errorf("task exec -u nobody\n%s", r)
	}
}
