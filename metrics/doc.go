// Package metrics holds berthd's Prometheus collectors.
//
// Every collector is registered on the prometheus.Registerer passed to New,
// never on the global default, so two agents can run in one test binary.
// Names start with berth_. Label values known in advance (kinds, results,
// services and methods) are pre-set to 0, so dashboards and rate() see the
// series from the first scrape instead of from the first event.
//
// Two kinds of collectors live here:
//
//   - Metrics: counters, gauges and histograms that the code updates as
//     things happen (API calls, reconciles, pulls, events).
//   - NodeCollector: reads state at scrape time through narrow interfaces
//     (content usage, snapshotter directories, per-container cgroup stats),
//     with a cache for what is slow to compute (disk usage by walking).
package metrics
