package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Kinds are the manifest kinds pre-set on the per-kind vectors.
var Kinds = []string{"Image", "Container", "Task"}

// Reconcile results, the values of ReconcileTotal's result label.
const (
	ResultSuccess = "success"
	ResultError   = "error"
	ResultRequeue = "requeue"
)

// Metrics are the collectors berthd updates as things happen. The controller,
// the API edge, the event bus and the node's pulls write to them.
type Metrics struct {
	// APIRequests counts unary API calls by service, method and status code
	// name ("OK", "NotFound", …). APIDuration is their latency.
	APIRequests *prometheus.CounterVec
	APIDuration *prometheus.HistogramVec
	// APIStreams are the streaming calls open now (events, followed logs,
	// pulls, CRI exec and attach sessions), by service and method; each is
	// counted in APIRequests and APIDuration once it ends.
	APIStreams *prometheus.GaugeVec

	// ReconcileTotal counts reconciles by kind and result
	// (success|error|requeue); ReconcileDuration is how long each took.
	ReconcileTotal    *prometheus.CounterVec
	ReconcileDuration *prometheus.HistogramVec
	// QueueDepth is the work queue's length per kind.
	QueueDepth *prometheus.GaugeVec
	// DriftRepairs counts reconciles that found the node differing from
	// what was desired and already achieved once (a container gone, a task
	// stopped behind berth's back), by kind.
	DriftRepairs *prometheus.CounterVec
	// DesiredObjects and ReadyObjects are the number of desired objects and
	// of those whose Ready condition is true, by kind.
	DesiredObjects *prometheus.GaugeVec
	ReadyObjects   *prometheus.GaugeVec

	// PullDuration is the wall time of whole pulls; PullBytes the bytes
	// downloaded from registries (blobs already present count nothing);
	// PullsTotal counts pulls by result (success|error).
	PullDuration prometheus.Histogram
	PullBytes    prometheus.Counter
	PullsTotal   *prometheus.CounterVec

	// EventsPublished counts events by topic; EventsDropped the events a
	// slow subscriber missed.
	EventsPublished *prometheus.CounterVec
	EventsDropped   prometheus.Counter
	// ManifestErrors counts manifest files that failed to parse or validate.
	ManifestErrors prometheus.Counter

	// Rollouts counts atomic rollouts by result (ready, rolledback,
	// failed: nothing applied); RolloutDuration is the time to Ready or to
	// the failure; RollbackDuration the time from a failure to the
	// previous revision Ready again.
	Rollouts         *prometheus.CounterVec
	RolloutDuration  *prometheus.HistogramVec
	RollbackDuration prometheus.Histogram
	// ImageUpdates counts automatic image updates (updatePolicy) by result:
	// updated, rolledback (the new digest did not become Ready), failed
	// (it could not be fetched).
	ImageUpdates *prometheus.CounterVec

	// Probes counts health probe runs by probe (liveness, readiness,
	// startup) and result (success, failure); ProbeDuration is their
	// latency by handler (exec, httpGet, tcpSocket); ProbeUnhealthy counts
	// tasks a failing liveness or startup probe stopped.
	Probes         *prometheus.CounterVec
	ProbeDuration  *prometheus.HistogramVec
	ProbeUnhealthy prometheus.Counter
}

// Probe labels pre-set.
var (
	ProbeKinds    = []string{"liveness", "readiness", "startup"}
	ProbeHandlers = []string{"exec", "httpGet", "tcpSocket"}
)

// RolloutResults and ImageUpdateResults are the result labels pre-set.
var (
	RolloutResults     = []string{"ready", "rolledback", "failed"}
	ImageUpdateResults = []string{"updated", "rolledback", "failed"}
)

// New creates the collectors, registers them and the Go runtime and process
// collectors on reg, and pre-sets the label values known in advance. It
// panics if reg already holds a collector of the same name (a wiring bug).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_api_requests_total", Help: "API calls by service, method and status code.",
		}, []string{"service", "method", "code"}),
		APIDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_api_request_duration_seconds", Help: "API call latency by service and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"service", "method"}),
		APIStreams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_api_streams_active", Help: "Streaming API calls open now by service and method.",
		}, []string{"service", "method"}),
		ReconcileTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_reconcile_total", Help: "Reconciles by kind and result (success, error, requeue).",
		}, []string{"kind", "result"}),
		ReconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_reconcile_duration_seconds", Help: "Reconcile duration by kind.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"kind"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_queue_depth", Help: "Keys waiting in the work queue by kind.",
		}, []string{"kind"}),
		DriftRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_drift_repairs_total", Help: "Repairs of drift from the desired state by kind.",
		}, []string{"kind"}),
		DesiredObjects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_desired_objects", Help: "Desired objects by kind.",
		}, []string{"kind"}),
		ReadyObjects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_ready_objects", Help: "Desired objects that are Ready by kind.",
		}, []string{"kind"}),
		PullDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_pull_duration_seconds", Help: "Duration of image pulls (including unpack when asked).",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
		PullBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_pull_bytes_total", Help: "Bytes downloaded from registries by pulls.",
		}),
		PullsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_pulls_total", Help: "Image pulls by result (success, error).",
		}, []string{"result"}),
		EventsPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_events_published_total", Help: "Events published by topic.",
		}, []string{"topic"}),
		EventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_events_dropped_total", Help: "Events dropped for slow subscribers.",
		}),
		ManifestErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_manifest_errors_total", Help: "Manifest files that failed to parse or validate.",
		}),
		Rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_rollouts_total", Help: "Atomic rollouts by result (ready, rolledback, failed).",
		}, []string{"result"}),
		RolloutDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_rollout_duration_seconds", Help: "Time from an atomic apply to Ready or to its failure, by result.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"result"}),
		RollbackDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_rollback_duration_seconds", Help: "Time from a failed rollout to the previous revision Ready again.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		ImageUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_image_updates_total", Help: "Automatic image updates by result (updated, rolledback, failed).",
		}, []string{"result"}),
		Probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_probes_total", Help: "Health probe runs by probe (liveness, readiness, startup) and result (success, failure).",
		}, []string{"probe", "result"}),
		ProbeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_probe_duration_seconds", Help: "Health probe latency by handler (exec, httpGet, tcpSocket).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"handler"}),
		ProbeUnhealthy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_probe_unhealthy_total", Help: "Tasks stopped because a liveness or startup probe failed.",
		}),
	}
	reg.MustRegister(
		m.APIRequests, m.APIDuration, m.APIStreams,
		m.ReconcileTotal, m.ReconcileDuration, m.QueueDepth, m.DriftRepairs,
		m.DesiredObjects, m.ReadyObjects,
		m.PullDuration, m.PullBytes, m.PullsTotal,
		m.EventsPublished, m.EventsDropped, m.ManifestErrors,
		m.Rollouts, m.RolloutDuration, m.RollbackDuration, m.ImageUpdates,
		m.Probes, m.ProbeDuration, m.ProbeUnhealthy,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.preset()
	return m
}

// Topics are the event topics pre-set on EventsPublished.
var Topics = []string{
	"/images/create", "/images/update", "/images/delete",
	"/containers/create", "/containers/update", "/containers/delete",
	"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete",
	"/tasks/paused", "/tasks/resumed", "/tasks/oom", "/tasks/unhealthy",
	"/snapshot/prepare", "/snapshot/commit", "/snapshot/remove",
	"/namespaces/create", "/namespaces/delete",
}

// preset creates the series whose label values are known in advance.
func (m *Metrics) preset() {
	for _, k := range Kinds {
		for _, r := range []string{ResultSuccess, ResultError, ResultRequeue} {
			m.ReconcileTotal.WithLabelValues(k, r)
		}
		m.ReconcileDuration.WithLabelValues(k)
		m.QueueDepth.WithLabelValues(k)
		m.DriftRepairs.WithLabelValues(k)
		m.DesiredObjects.WithLabelValues(k)
		m.ReadyObjects.WithLabelValues(k)
	}
	for _, r := range []string{ResultSuccess, ResultError} {
		m.PullsTotal.WithLabelValues(r)
	}
	for _, t := range Topics {
		m.EventsPublished.WithLabelValues(t)
	}
	for _, r := range RolloutResults {
		m.Rollouts.WithLabelValues(r)
	}
	for _, r := range ImageUpdateResults {
		m.ImageUpdates.WithLabelValues(r)
	}
	for _, k := range ProbeKinds {
		for _, r := range []string{"success", "failure"} {
			m.Probes.WithLabelValues(k, r)
		}
	}
	for _, h := range ProbeHandlers {
		m.ProbeDuration.WithLabelValues(h)
	}
}

// PresetAPI creates the series of a service's methods with code "OK", so
// every method shows from the start (errors appear as they happen).
func (m *Metrics) PresetAPI(service string, methods ...string) {
	for _, meth := range methods {
		m.APIRequests.WithLabelValues(service, meth, "OK")
		m.APIDuration.WithLabelValues(service, meth)
	}
}

// ObservePull records one pull: its duration, the bytes it downloaded and
// whether it failed. It has the shape of node.Options.OnPull.
func (m *Metrics) ObservePull(d time.Duration, bytes int64, err error) {
	m.PullDuration.Observe(d.Seconds())
	if bytes > 0 {
		m.PullBytes.Add(float64(bytes))
	}
	if err != nil {
		m.PullsTotal.WithLabelValues(ResultError).Inc()
		return
	}
	m.PullsTotal.WithLabelValues(ResultSuccess).Inc()
}
