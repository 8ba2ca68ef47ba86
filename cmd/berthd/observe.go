package main

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	eventsapi "berth.dev/berth/api/events/v1"
	imagesapi "berth.dev/berth/api/images/v1"
	"berth.dev/berth/api/server"
	tasksapi "berth.dev/berth/api/tasks/v1"
	"berth.dev/berth/content"
	"berth.dev/berth/metrics"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// initMetrics creates the daemon's own registry and collectors and hooks
// the event bus to them. It runs before the node is built, whose pulls
// report to d.metrics.
func (d *Daemon) initMetrics() {
	d.reg = prometheus.NewRegistry()
	d.metrics = metrics.New(d.reg)
	d.bus.OnPublish = func(ev observed.Event) { d.metrics.EventsPublished.WithLabelValues(ev.Topic).Inc() }
	d.bus.OnDrop = d.metrics.EventsDropped.Inc
	presetAPI(d.metrics)
	d.metrics.PresetAPI(criStreamingService, "Exec", "Attach", "PortForward")
	for _, m := range []string{"Exec", "Attach", "PortForward"} {
		d.metrics.APIStreams.WithLabelValues(criStreamingService, m)
	}
}

// registerNodeCollector adds the scrape-time collector over the opened
// stores and live tasks.
func (d *Daemon) registerNodeCollector() {
	sns := map[string]string{}
	for _, name := range d.node.SnapshotterNames() {
		sns[name] = filepath.Join(d.cfg.Root, "snapshots", name)
	}
	d.reg.MustRegister(metrics.NewNodeCollector(metrics.NodeSources{
		Content:      contentUsage{d.blobs},
		Snapshotters: sns,
		Tasks:        taskStats{d},
		Log:          d.log,
	}))
}

// eventsService is the events API, with its subscriber count as a gauge.
func (d *Daemon) eventsService() *server.Events {
	ev := &server.Events{Bus: d.bus}
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "berth_event_subscribers", Help: "Event streams subscribed now.",
	}, func() float64 { return float64(ev.Active()) }))
	return ev
}

// observeAPI is the API interceptor's Observer: calls by service, method
// and the status code the client sees.
func (d *Daemon) observeAPI(service, method string, took time.Duration, err error) {
	code := "OK"
	if err != nil {
		code = status.Code(errgrpc.ToGRPC(err)).String()
	}
	d.metrics.APIRequests.WithLabelValues(service, method, code).Inc()
	d.metrics.APIDuration.WithLabelValues(service, method).Observe(took.Seconds())
}

// presetAPI pre-sets a series for every unary method of berth's services
// (those linked into berthd), read from the generated descriptors so new
// methods show without a list to keep.
func presetAPI(m *metrics.Metrics) {
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		pkg := string(fd.Package())
		if !strings.HasPrefix(pkg, "berth.") || strings.HasPrefix(pkg, "berth.shim.") {
			return true
		}
		svcs := fd.Services()
		for i := 0; i < svcs.Len(); i++ {
			svc := svcs.Get(i)
			var methods []string
			for j := 0; j < svc.Methods().Len(); j++ {
				md := svc.Methods().Get(j)
				if !md.IsStreamingClient() && (!md.IsStreamingServer() || observedStreams[string(svc.FullName())+"/"+string(md.Name())]) {
					methods = append(methods, string(md.Name()))
				}
			}
			m.PresetAPI(string(svc.FullName()), methods...)
			for j := 0; j < svc.Methods().Len(); j++ {
				if name := string(svc.Methods().Get(j).Name()); observedStreams[string(svc.FullName())+"/"+name] {
					m.APIStreams.WithLabelValues(string(svc.FullName()), name)
				}
			}
		}
		return true
	})
}

// observedStreams are the server-streaming calls counted like unary ones
// (ttrpc has no stream interceptor, so each is wrapped by hand below), and
// shown while open in berth_api_streams_active.
var observedStreams = map[string]bool{
	imagesService + "/Pull":      true,
	imagesService + "/Export":    true,
	eventsService + "/Subscribe": true,
	tasksService + "/Logs":       true,
}

const (
	imagesService = "berth.images.v1.Images"
	eventsService = "berth.events.v1.Events"
	tasksService  = "berth.tasks.v1.Tasks"
	// criStreamingService labels the CRI's exec, attach and port-forward
	// sessions (the streaming server's connections, not gRPC calls).
	criStreamingService = "runtime.v1.Streaming"
)

// observeStream runs one streaming call: open in APIStreams meanwhile,
// then counted with its duration and code as a unary call is.
func (d *Daemon) observeStream(service, method string, call func() error) error {
	g := d.metrics.APIStreams.WithLabelValues(service, method)
	g.Inc()
	start := time.Now()
	err := call()
	g.Dec()
	d.observeAPI(service, method, time.Since(start), err)
	return err
}

// observeImages wraps the images service so its streaming calls are counted.
func (d *Daemon) observeImages(s imagesapi.ImagesService) imagesapi.ImagesService {
	return observedImages{s, d}
}

type observedImages struct {
	imagesapi.ImagesService
	d *Daemon
}

func (o observedImages) Pull(ctx context.Context, r *imagesapi.PullRequest, s imagesapi.Images_PullServer) error {
	return o.d.observeStream(imagesService, "Pull", func() error { return o.ImagesService.Pull(ctx, r, s) })
}

func (o observedImages) Export(ctx context.Context, r *imagesapi.ExportRequest, s imagesapi.Images_ExportServer) error {
	return o.d.observeStream(imagesService, "Export", func() error { return o.ImagesService.Export(ctx, r, s) })
}

// observeEvents and observeTasks wrap those services' streaming calls
// (Subscribe, Logs) the same way.
func (d *Daemon) observeEvents(s eventsapi.EventsService) eventsapi.EventsService {
	return observedEvents{s, d}
}

type observedEvents struct {
	eventsapi.EventsService
	d *Daemon
}

func (o observedEvents) Subscribe(ctx context.Context, r *eventsapi.SubscribeRequest, s eventsapi.Events_SubscribeServer) error {
	return o.d.observeStream(eventsService, "Subscribe", func() error { return o.EventsService.Subscribe(ctx, r, s) })
}

func (d *Daemon) observeTasks(s tasksapi.TasksService) tasksapi.TasksService {
	return observedTasks{s, d}
}

type observedTasks struct {
	tasksapi.TasksService
	d *Daemon
}

func (o observedTasks) Logs(ctx context.Context, r *tasksapi.LogsRequest, s tasksapi.Tasks_LogsServer) error {
	return o.d.observeStream(tasksService, "Logs", func() error { return o.TasksService.Logs(ctx, r, s) })
}

// contentUsage sums the content store's blobs.
type contentUsage struct{ cs content.Store }

func (c contentUsage) Usage(ctx context.Context) (bytes, blobs int64, err error) {
	err = c.cs.Walk(ctx, func(info content.Info) error {
		bytes += info.Size
		blobs++
		return nil
	})
	return bytes, blobs, err
}

// taskStats reads the cgroup statistics of every live task through its shim.
type taskStats struct{ d *Daemon }

var _ metrics.TaskStats = taskStats{}

func (t taskStats) Stats(ctx context.Context) ([]metrics.ContainerStats, error) {
	nss, err := t.d.obs.ListNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []metrics.ContainerStats
	for _, ns := range nss {
		tasks, err := t.d.node.ListTasks(ctx, ns.Name)
		if err != nil {
			continue // deleted meanwhile
		}
		for _, tk := range tasks {
			if tk.Status != spec.TaskPhaseRunning && tk.Status != spec.TaskPhasePaused {
				continue
			}
			m, err := t.d.node.TaskMetrics(ctx, ns.Name, tk.ID)
			if err != nil {
				t.d.log.Debug("metrics: task stats", "namespace", ns.Name, "id", tk.ID, "err", err)
				continue
			}
			cs := metrics.ContainerStats{
				Namespace: ns.Name, Name: tk.ID,
				CPUSeconds:  float64(m.CPUUsageNs) / 1e9,
				MemoryBytes: m.MemoryUsage, MemoryLimit: memoryLimit(m.MemoryLimit), Pids: m.PidsCurrent,
			}
			if n, err := t.d.node.NetworkStats(ns.Name, tk.ID); err == nil {
				cs.HasNetwork, cs.RxBytes, cs.TxBytes = true, n.RxBytes, n.TxBytes
			}
			out = append(out, cs)
		}
	}
	return out, nil
}

// memoryLimit reports cgroup v1's "unlimited" (a page-rounded MaxInt64) as 0.
func memoryLimit(v uint64) uint64 {
	if v >= 1<<62 {
		return 0
	}
	return v
}
