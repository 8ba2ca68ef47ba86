package observed

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

func TestDB_Containers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openDB(t)
	c := Container{ID: "web", Image: "busybox", Snapshotter: "overlayfs", SnapshotKey: "default/web",
		Spec: json.RawMessage(`{"ociVersion":"1.2.0"}`), SpecHash: "sha256:x", Labels: map[string]string{"a": "b"}}
	for _, tc := range []struct {
		name string
		ns   string
		c    Container
		want func(error) bool
	}{
		{"bad id", "default", Container{ID: "Bad_ID"}, errdefs.IsInvalidArgument},
		{"unknown namespace", "nowhere", c, errdefs.IsNotFound},
	} {
		if _, err := d.CreateContainer(ctx, tc.ns, tc.c); !tc.want(err) {
			t.Errorf("%s: got %v", tc.name, err)
		}
	}
	created, err := d.CreateContainer(ctx, "default", c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateContainer(ctx, "default", c); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("create twice: got %v, want already exists", err)
	}
	got, err := d.GetContainer(ctx, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Fatalf("get (-want +got):\n%s", diff)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if _, err := d.UpdateContainer(ctx, "default", "web", func(c *Container) error {
		c.LastExit = &Exit{Pid: 7, ExitStatus: 137, ExitedAt: at, OOMKilled: true}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	list, err := d.ListContainers(ctx, "default")
	if err != nil || len(list) != 1 || list[0].LastExit == nil || !list[0].LastExit.ExitedAt.Equal(at) {
		t.Fatalf("list: got %+v, %v", list, err)
	}
	if err := d.DeleteContainer(ctx, "default", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetContainer(ctx, "default", "web"); !errdefs.IsNotFound(err) {
		t.Fatalf("get deleted: got %v, want not found", err)
	}
	if err := d.DeleteContainer(ctx, "default", "web"); !errdefs.IsNotFound(err) {
		t.Fatalf("delete twice: got %v, want not found", err)
	}
}
