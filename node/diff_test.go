package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"berth.dev/berth/content"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/spec"
)

const ns = spec.DefaultNamespace

func withMount(t *testing.T, ms []snapshot.Mount, fn func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	if err := snapshot.MountAll(ms, dir); err != nil {
		t.Fatal(err)
	}
	defer snapshot.UnmountAll(dir)
	fn(dir)
}

// TestCompareMountsThenApplyLayer: a layer computed from two mount sets is
// in the content store under its digest, labelled with its diffID, and
// applying it onto a fresh child of the same parent reproduces the change.
func TestCompareMountsThenApplyLayer(t *testing.T) {
	n, _ := testNode(t)
	ctx := context.Background()
	sn, _, _ := n.Snapshotter("")
	chain := busyboxChain(t, n)
	upper, err := sn.Prepare(ctx, ns+"/work", chain)
	if err != nil {
		t.Fatal(err)
	}
	withMount(t, upper, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hi\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "etc/group")); err != nil {
			t.Fatal(err)
		}
	})
	lower, err := sn.View(ctx, ns+"/lower", chain)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.CompareMounts(ctx, ns, lower, upper, LayerOptions{Compression: "zstd", List: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Changes, "f 600 hello") || !slices.Contains(res.Changes, "D etc/group") || !res.FastPath {
		t.Errorf("layer %+v: want hello added and etc/group deleted, read from the upperdir", res)
	}
	info, err := n.opts.Content.Info(ctx, res.Desc.Digest)
	if err != nil {
		t.Fatalf("layer blob not in the store: %v", err)
	}
	if info.Size != res.Desc.Size || info.Labels[LabelUncompressed] != res.DiffID.String() {
		t.Errorf("blob %+v, want size %d and label %s=%s", info, res.Desc.Size, LabelUncompressed, res.DiffID)
	}

	check, err := sn.Prepare(ctx, ns+"/check", chain)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := n.ApplyLayer(ctx, ns, res.Desc, check)
	if err != nil {
		t.Fatal(err)
	}
	if ar.DiffID != res.DiffID {
		t.Errorf("applied diffID %s, compared %s", ar.DiffID, res.DiffID)
	}
	withMount(t, check, func(dir string) {
		if b, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(b) != "hi\n" {
			t.Errorf("hello after apply: %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "etc/group")); !os.IsNotExist(err) {
			t.Errorf("etc/group after apply: %v, want it deleted", err)
		}
	})
	if _, err := n.ApplyLayer(ctx, ns, res.Desc, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("apply onto no mounts: %v, want InvalidArgument", err)
	}
}

// TestCommitContainer_Running: committing a running container pauses and
// resumes its task; the image has one more layer and diffID, a history
// entry, and the config with the changes.
func TestCommitContainer_Running(t *testing.T) {
	n, rec := testNode(t)
	ctx := context.Background()
	runSleeper(t, n, "c1")
	c, err := n.opts.DB.GetContainer(ctx, ns, "c1")
	if err != nil {
		t.Fatal(err)
	}
	sn, _, _ := n.Snapshotter(c.Snapshotter)
	ms, err := sn.Mounts(ctx, c.SnapshotKey)
	if err != nil {
		t.Fatal(err)
	}
	withMount(t, ms, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "state.txt"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	res, err := n.CommitContainer(ctx, ns, "c1", "committed:v1", CommitOptions{
		Pause: true, Changes: []string{"ENV A=1", "WORKDIR /srv"}, Message: "snap", Author: "me",
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec.count("/tasks/paused", "id", "c1") != 1 || rec.count("/tasks/resumed", "id", "c1") != 1 {
		t.Errorf("commit should pause and resume the task once: paused %d, resumed %d",
			rec.count("/tasks/paused", "id", "c1"), rec.count("/tasks/resumed", "id", "c1"))
	}
	if ti, err := n.GetTask(ctx, ns, "c1"); err != nil || ti.Status != spec.TaskPhaseRunning {
		t.Errorf("task after commit: %+v, %v; want running", ti, err)
	}
	img, err := n.opts.DB.GetImage(ctx, ns, "committed:v1")
	if err != nil {
		t.Fatal(err)
	}
	m, cfg, err := n.ImageConfig(ctx, img, "")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := n.opts.DB.GetImage(ctx, ns, "busybox:latest")
	bm, bcfg, _ := n.ImageConfig(ctx, base, "")
	if len(m.Layers) != len(bm.Layers)+1 || m.Layers[len(m.Layers)-1].Digest != res.Layer.Desc.Digest {
		t.Errorf("layers %v: want busybox's plus %s", m.Layers, res.Layer.Desc.Digest)
	}
	if got := cfg.RootFS.DiffIDs; len(got) != len(bcfg.RootFS.DiffIDs)+1 || got[len(got)-1] != res.Layer.DiffID {
		t.Errorf("diffIDs %v: want busybox's plus %s", got, res.Layer.DiffID)
	}
	h := cfg.History[len(cfg.History)-1]
	if h.Comment != "snap" || h.Author != "me" || !strings.Contains(h.CreatedBy, "c1") {
		t.Errorf("history entry %+v", h)
	}
	if !slices.Contains(cfg.Config.Env, "A=1") || cfg.Config.WorkingDir != "/srv" || !slices.Equal(cfg.Config.Cmd, bcfg.Config.Cmd) {
		t.Errorf("config %+v: want busybox's with A=1 and /srv", cfg.Config)
	}
	if _, err := content.ReadBlob(ctx, n.opts.Content, res.Layer.Desc, 1<<20); err != nil {
		t.Errorf("layer blob: %v", err)
	}
	if _, err := n.CommitContainer(ctx, ns, "nope", "x:v1", CommitOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("commit of an unknown container: %v, want NotFound", err)
	}
	if _, err := n.CommitContainer(ctx, ns, "c1", "x:v1", CommitOptions{Changes: []string{"RUN true"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("commit with an unsupported change: %v, want InvalidArgument", err)
	}
}

// TestCleanupDiffViews removes the views a crashed diff left, only those.
func TestCleanupDiffViews(t *testing.T) {
	n, _ := testNode(t)
	ctx := context.Background()
	sn, _, _ := n.Snapshotter("")
	chain := busyboxChain(t, n)
	if _, err := sn.View(ctx, ns+"/diff-view-dead", chain, snapshot.WithLabels(map[string]string{labelDiffView: "view"})); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View(ctx, ns+"/mine", chain); err != nil {
		t.Fatal(err)
	}
	if err := n.CleanupDiffViews(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Stat(ctx, ns+"/diff-view-dead"); !errdefs.IsNotFound(err) {
		t.Errorf("stale diff view: %v, want removed", err)
	}
	if _, err := sn.Stat(ctx, ns+"/mine"); err != nil {
		t.Errorf("a user's view was removed: %v", err)
	}
}
