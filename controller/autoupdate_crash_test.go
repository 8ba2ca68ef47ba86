package controller

import (
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
)

// berthd killed between the update's pull (the record moved to the new
// digest) and the Image's status (still idle, on the old digest): the
// restarted controller resumes the update one Container at a time, as if
// the status had been written, instead of taking the new digest as the
// image's for every Container at once with no rollback, and leaving the
// pinned record forever.
func TestAutoUpdate_KillBetweenPullAndStatus(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.apply(`apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox}
spec:
  ref: "127.0.0.1:5000/busybox:1"
  updatePolicy: {mode: Digest, interval: 1h, timeout: 20s}
` + testContainer)
	r.converge()
	ik := key(spec.KindImage, "busybox")
	st, err := r.db.GetStatus(r.ctx, ik)
	if err != nil || st.Status.ImageStatus == nil {
		t.Fatalf("image status: %v %+v", err, st)
	}
	old := st.Status.ImageStatus.Digest
	name := "127.0.0.1:5000/busybox:1"
	img, err := r.db.GetImage(r.ctx, spec.DefaultNamespace, name)
	if err != nil {
		t.Fatal(err)
	}
	// What autoUpdate wrote before the kill: the previous digest pinned,
	// then the new one pulled under the Image's record.
	pinned := pinnedImageName(name, old)
	if _, _, err := r.db.PutImage(r.ctx, spec.DefaultNamespace, observed.Image{Name: pinned, Target: img.Target, Unpacked: img.Unpacked}); err != nil {
		t.Fatal(err)
	}
	next := digest.NewDigestFromBytes(digest.SHA256, make([]byte, 32))
	r.node.SetDigest(name, next)
	if _, err := r.node.Pull(r.ctx, spec.DefaultNamespace, name, node.PullOptions{}); err != nil {
		t.Fatal(err)
	}

	r.c = r.newController() // restarted
	r.reconcile(ik)
	st, _ = r.db.GetStatus(r.ctx, ik)
	u := st.Status.ImageStatus.Update
	if u == nil || u.Previous != old || u.Target != next.String() {
		t.Fatalf("got update %+v (image digest %s), want the update from %s to %s resumed", u, st.Status.ImageStatus.Digest, old, next)
	}
	if len(u.Moved) != 1 || u.Moved[0] != "web" {
		t.Errorf("got moved %v, want [web] only", u.Moved)
	}
	if n, d := containerImage(name, st.Status.ImageStatus, "other"); n != pinned || d != old {
		t.Errorf("a Container not moved yet is made from %s (%s), want the pinned %s", n, d, pinned)
	}
}
