package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/internal/span"
	shimbundle "berth.dev/berth/shim/bundle"
	"berth.dev/berth/shim/client"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// RecoverTasks finds the bundles under the state directory after berthd
// starts. A bundle of a known container with a live shim is adopted: its
// monitor resumes, and an exit that happened while berthd was down is
// reported then (once: see reportExit). A bundle whose shim is dead has
// its recorded exit reported once and is cleaned up, keeping the
// container. A bundle of a container berth does not know is never adopted:
// its task is killed and the bundle removed. Nothing is ever restarted.
func (n *Node) RecoverTasks(ctx context.Context) error {
	state := n.opts.Tasks.State
	nss, err := os.ReadDir(state)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("recover tasks: %w", err)
	}
	n.cleanTmp(filepath.Join(state, ".tmp"))
	n.cleanSpares()
	start := time.Now()
	type bundleRef struct{ ns, id string }
	var refs []bundleRef
	for _, nsEnt := range nss {
		ns := nsEnt.Name()
		if !nsEnt.IsDir() || strings.HasPrefix(ns, ".") || spec.ValidateNamespace(ns) != nil {
			continue
		}
		ids, err := os.ReadDir(filepath.Join(state, ns))
		if err != nil {
			return fmt.Errorf("recover tasks: %w", err)
		}
		for _, idEnt := range ids {
			// Only what looks like a bundle is touched: a directory of
			// someone else's under the state dir is left alone.
			if !idEnt.IsDir() || !isBundle(filepath.Join(state, ns, idEnt.Name())) {
				continue
			}
			refs = append(refs, bundleRef{ns, idEnt.Name()})
		}
	}
	// Bundles are independent (each its own container, shim and lock), so
	// they are recovered side by side: each costs a dial and two calls to
	// its shim, which mostly wait on the shim being scheduled. A few
	// workers per core bound the fan-out on a node with many tasks.
	var (
		mu               sync.Mutex
		adopted, cleaned int
		wg               sync.WaitGroup
		next             = make(chan bundleRef)
	)
	for range min(len(refs), 4*runtime.NumCPU()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				ok, err := n.recoverTask(ctx, r.ns, r.id)
				if err != nil {
					n.log.Warn("recover task", "namespace", r.ns, "id", r.id, "err", err)
				}
				mu.Lock()
				if ok {
					adopted++
				} else {
					cleaned++
				}
				mu.Unlock()
			}
		}()
	}
	for _, r := range refs {
		next <- r
	}
	close(next)
	wg.Wait()
	n.log.Info("recovered tasks", "adopted", adopted, "cleaned", cleaned, "took", time.Since(start))
	return nil
}

// recoverTask adopts or cleans one bundle; adopted says which.
func (n *Node) recoverTask(ctx context.Context, ns, id string) (adopted bool, _ error) {
	bundle, err := n.bundleDir(ns, id)
	if err != nil {
		// Not a name berth gives a bundle: not one of ours, left alone.
		return false, err
	}
	rec := span.New()
	defer func() { span.Log(ctx, n.log, rec, "method", "recover.task", "id", id) }()
	t := time.Now()
	_, cerr := n.opts.DB.GetContainer(ctx, ns, id)
	known := cerr == nil
	rt := n.bundleRuntime(bundle, ns, id)
	rec.Add("db+runtime", time.Since(t))
	t = time.Now()
	cl, err := client.Connect(ctx, bundle)
	rec.Add("shim.connect", time.Since(t))
	if err == nil && !known {
		n.log.Warn("stale bundle of an unknown container: killing its task", "namespace", ns, "id", id)
		_, _ = cl.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: 9, All: true})
		_, _ = cl.Wait(ctx, &shimapi.WaitRequest{Id: id})
		_, _ = cl.Delete(ctx, &shimapi.DeleteRequest{Id: id})
		_, _ = cl.Shutdown(ctx, &shimapi.ShutdownRequest{Id: id, Now: true})
		cl.Close()
	}
	if err == nil && known {
		// Connect answered with the task's pid: no second call to learn
		// that the shim has a task (its monitor's Wait follows).
		if pid := cl.TaskPid(); pid != 0 {
			tt := n.tasks()
			done, rerr := tt.reserve(ns, id)
			if rerr != nil {
				cl.Close()
				return false, rerr
			}
			tk := &task{ns: ns, id: id, bundle: bundle, runtime: rt, c: cl, pid: pid, done: make(chan struct{})}
			done(tk)
			tt.wg.Add(1)
			go n.monitor(tk)
			n.log.Info("adopted task", "namespace", ns, "id", id, "pid", pid)
			return true, nil
		}
		// A shim that serves but knows no task (killed between start and
		// create): it is stopped and the bundle cleaned.
		_, _ = cl.Shutdown(ctx, &shimapi.ShutdownRequest{Id: id, Now: true})
		cl.Close()
	}
	if err != nil && !errdefs.IsUnavailable(err) && !errdefs.IsNotFound(err) {
		return false, err
	}
	if known {
		// The shim died: report what it recorded (or 255) once.
		pid := uint32(0)
		if b, err := os.ReadFile(filepath.Join(bundle, "init.pid")); err == nil {
			fmt.Sscan(string(b), &pid)
		}
		n.reportExit(ctx, ns, id, n.exitOfDeadShim(bundle, pid))
	}
	return false, n.removeBundle(ctx, ns, id, rt)
}

// bundleRuntime is the runtime that ran the bundle's container, for a
// forced delete when the shim is gone.
func (n *Node) bundleRuntime(bundle, ns, id string) string {
	if c, err := n.opts.DB.GetContainer(context.Background(), ns, id); err == nil {
		if rt, err := n.runtimeBinary(c.Runtime); err == nil {
			return rt
		}
	}
	rt, _ := n.runtimeBinary("")
	return rt
}

// isBundle reports whether dir holds a bundle berthd wrote: a rootfs
// mount point with config.json or the shim's files beside it.
func isBundle(dir string) bool {
	for _, name := range []string{shimbundle.ConfigName, shimbundle.PidName, shimbundle.ExitName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	st, err := os.Stat(filepath.Join(dir, "rootfs"))
	return err == nil && st.IsDir()
}

// cleanTmp removes the scratch directory generateSpec mounts rootfs
// snapshots under. A crash inside generateSpec leaves a snapshot mounted
// there; removing the directory through that mount would delete the
// container's files, so everything mounted under it is unmounted first
// (deepest first), and the directory is left alone if anything stays.
func (n *Node) cleanTmp(tmp string) {
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		if err := snapshot.UnmountAll(filepath.Join(tmp, e.Name())); err != nil {
			n.log.Warn("unmount leftover scratch rootfs", "path", filepath.Join(tmp, e.Name()), "err", err)
		}
	}
	mps, err := snapshot.MountsUnder(tmp)
	if err != nil {
		n.log.Warn("clean scratch directory: read mounts", "err", err)
		return
	}
	for _, mp := range mps {
		if err := snapshot.UnmountAll(mp); err != nil {
			n.log.Warn("unmount leftover scratch mount", "path", mp, "err", err)
		}
	}
	if mps, err := snapshot.MountsUnder(tmp); err != nil || len(mps) > 0 {
		n.log.Warn("scratch directory still has mounts: not removed", "path", tmp, "mounts", mps, "err", err)
		return
	}
	if err := os.RemoveAll(tmp); err != nil {
		n.log.Warn("remove scratch directory", "path", tmp, "err", err)
	}
}
