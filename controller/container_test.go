package controller

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/observed"

	"berth.dev/berth/oci"
	"berth.dev/berth/spec"
	"github.com/google/go-cmp/cmp"
)

func TestContainerSettings(t *testing.T) {
	t.Parallel()
	obj := spec.Object{Origin: spec.Origin{Dir: "/etc/berth/manifests"}}
	tests := []struct {
		name    string
		in      spec.ContainerSpec
		check   func(t *testing.T, s oci.Settings)
		wantErr bool
	}{
		{
			name: "command replaces the entrypoint, args the cmd",
			in:   spec.ContainerSpec{Command: []string{"httpd", "-f"}, Args: []string{"-p", "80"}},
			check: func(t *testing.T, s oci.Settings) {
				if diff := cmp.Diff([]string{"httpd", "-f"}, s.Entrypoint); diff != "" {
					t.Errorf("entrypoint (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"-p", "80"}, s.Args); diff != "" {
					t.Errorf("args (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "no command keeps the image's entrypoint",
			in:   spec.ContainerSpec{},
			check: func(t *testing.T, s oci.Settings) {
				if s.Entrypoint != nil {
					t.Errorf("entrypoint: got %q, want nil", s.Entrypoint)
				}
			},
		},
		{
			name: "env, network and resources",
			in: spec.ContainerSpec{Env: []spec.EnvVar{{Name: "A", Value: "1"}}, Network: spec.NetworkHost,
				Resources: spec.Resources{CPU: "500m", Memory: "64Mi", Pids: 128}},
			check: func(t *testing.T, s oci.Settings) {
				want := oci.Resources{CPU: 0.5, MemoryBytes: 64 << 20, Pids: 128}
				if s.Resources != want || !s.NetworkHost || len(s.Env) != 1 || s.Env[0] != "A=1" {
					t.Errorf("got %+v", s)
				}
			},
		},
		{
			name: "mount options",
			in: spec.ContainerSpec{Mounts: []spec.Mount{
				{Type: spec.MountBind, Source: "data", Target: "/data", Options: []string{"ro"}},
				{Type: spec.MountTmpfs, Target: "/tmp", Options: []string{"size=16Mi"}},
			}},
			check: func(t *testing.T, s oci.Settings) {
				want := []oci.Mount{
					{Type: "bind", Source: "/etc/berth/manifests/data", Target: "/data", ReadOnly: true},
					{Type: "tmpfs", Target: "/tmp", SizeBytes: 16 << 20},
				}
				if diff := cmp.Diff(want, s.Mounts); diff != "" {
					t.Errorf("mounts (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:    "unknown mount option",
			in:      spec.ContainerSpec{Mounts: []spec.Mount{{Type: spec.MountTmpfs, Target: "/tmp", Options: []string{"exec"}}}},
			wantErr: true,
		},
		{
			name:    "bad quantity",
			in:      spec.ContainerSpec{Resources: spec.Resources{Memory: "64Q"}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := containerSettings(obj, tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, got.Settings)
			}
		})
	}
}

func TestContainerHash_ChangesWithSpecOrDigest(t *testing.T) {
	t.Parallel()
	a := spec.ContainerInstanceHash("spec1", "sha256:a")
	for _, other := range []string{spec.ContainerInstanceHash("spec2", "sha256:a"), spec.ContainerInstanceHash("spec1", "sha256:b")} {
		if other == a {
			t.Errorf("hash did not change: %s", a)
		}
	}
	if spec.ContainerInstanceHash("spec1", "sha256:a") != a {
		t.Error("hash is not stable")
	}
}

// A Container naming an Image nobody declared is Progressing for a short
// grace, then Degraded with reason ImageNotDeclared, counted from its
// recorded status (so a restart does not reset it); declaring the Image
// clears Degraded.
func TestReconcileContainer_ImageNotDeclared(t *testing.T) {
	ctx := context.Background()
	ctr := spec.Object{APIVersion: spec.APIVersion, Kind: spec.KindContainer, Metadata: spec.Metadata{Name: "web"},
		Spec: spec.ContainerSpec{Image: "busybox"}}
	img := spec.Object{APIVersion: spec.APIVersion, Kind: spec.KindImage, Metadata: spec.Metadata{Name: "busybox"},
		Spec: spec.ImageSpec{Ref: "127.0.0.1:5000/busybox:1", PullPolicy: spec.PullIfNotPresent}}
	store := desired.NewStore()
	store.ReplaceSource("web.yaml", []spec.Object{ctr}, nil)
	db := openDB(t)
	c := New(Options{Desired: store, DB: db, Bus: observed.NewBus(), Log: slog.New(slog.DiscardHandler)})
	key := spec.Key{Namespace: spec.DefaultNamespace, Kind: spec.KindContainer, Name: "web"}
	reconcile := func() (Result, spec.Status) {
		t.Helper()
		e, ok := store.Get(key)
		if !ok {
			t.Fatalf("%s not in the store", key)
		}
		res, err := c.reconcileContainer(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		st, err := db.GetStatus(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return res, st.Status
	}
	cond := func(st spec.Status, ct spec.ConditionType) spec.Condition {
		cd, _ := st.Condition(ct)
		return cd
	}

	res, st := reconcile()
	if p := cond(st, spec.ConditionProgressing); p.Status != spec.ConditionTrue || p.Reason != "WaitingForImage" {
		t.Fatalf("first reconcile: Progressing %+v, want True/WaitingForImage", p)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > imageNotDeclaredGrace {
		t.Errorf("first reconcile requeues after %v, want within the grace %v", res.RequeueAfter, imageNotDeclaredGrace)
	}

	// The grace has passed: as if the first reconcile ran 11 s ago.
	prev, _ := db.GetStatus(ctx, key)
	for i := range prev.Status.Conditions {
		prev.Status.Conditions[i].LastTransitionTime = prev.Status.Conditions[i].LastTransitionTime.Add(-imageNotDeclaredGrace - time.Second)
	}
	if err := db.PutStatus(ctx, prev); err != nil {
		t.Fatal(err)
	}
	_, st = reconcile()
	d := cond(st, spec.ConditionDegraded)
	if d.Status != spec.ConditionTrue || d.Reason != "ImageNotDeclared" || !strings.Contains(d.Message, "Image default/busybox is not declared") {
		t.Fatalf("after the grace: Degraded %+v, want True/ImageNotDeclared naming default/busybox", d)
	}
	if p := cond(st, spec.ConditionProgressing); p.Status != spec.ConditionFalse {
		t.Errorf("after the grace: Progressing %+v, want False", p)
	}
	if _, st = reconcile(); cond(st, spec.ConditionDegraded).Reason != "ImageNotDeclared" {
		t.Errorf("a resync cleared Degraded: %+v", st.Conditions)
	}

	store.ReplaceSource("web.yaml", []spec.Object{ctr, img}, nil)
	_, st = reconcile()
	if d := cond(st, spec.ConditionDegraded); d.Status != spec.ConditionFalse {
		t.Errorf("Image declared: Degraded %+v, want False", d)
	}
	if p := cond(st, spec.ConditionProgressing); p.Status != spec.ConditionTrue || p.Reason != "WaitingForImage" {
		t.Errorf("Image declared: Progressing %+v, want True/WaitingForImage (for the pull)", p)
	}
}
