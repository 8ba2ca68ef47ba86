package test

import (
	"fmt"
	"testing"
	"time"

	"berth.dev/berth/test/harness"
)

// TestCLI_StreamingCallsInMetrics: the API's streaming calls (events,
// logs; the CRI's exec, attach and port-forward sessions) are in
// berth_api_requests_total and its duration as the unary ones are, by code,
// once they end, and in berth_api_streams_active while open.
func TestCLI_StreamingCallsInMetrics(t *testing.T) {
	d := runDaemon(t)
	series := func(svc, method string, extra ...string) []string {
		return append([]string{"service", svc, "method", method}, extra...)
	}
	const events, tasks = "berth.events.v1.Events", "berth.tasks.v1.Tasks"
	before := scrape(t, d)
	for _, s := range [][]string{
		series(events, "Subscribe", "code", "OK"), series(tasks, "Logs", "code", "OK"),
		series("runtime.v1.Streaming", "Exec", "code", "OK"), series("runtime.v1.Streaming", "Attach", "code", "OK"),
	} {
		if v := mustMetric(t, before, "berth_api_requests_total", s...); v != 0 {
			t.Errorf("berth_api_requests_total%v = %v before any call, want a series at 0", s, v)
		}
	}
	for _, s := range [][]string{series(events, "Subscribe"), series(tasks, "Logs"), series("runtime.v1.Streaming", "Exec")} {
		if v := mustMetric(t, before, "berth_api_streams_active", s...); v != 0 {
			t.Errorf("berth_api_streams_active%v = %v, want 0", s, v)
		}
		mustMetric(t, before, "berth_api_request_duration_seconds_count", s...)
	}
	waitMetric := func(name string, labels []string, want float64) {
		t.Helper()
		harness.Eventually(t, 10*time.Second, func() (bool, string) {
			v, _ := metric(scrape(t, d), name, labels...)
			return v == want, fmt.Sprintf("%s%v = %v, want %v", name, labels, v, want)
		})
	}
	sub := startStreaming(t, d, "events")
	waitMetric("berth_api_streams_active", series(events, "Subscribe"), 1)
	if code := sub.interrupt(t); code != 0 {
		t.Errorf("berth events: exit %d after SIGINT", code)
	}
	waitMetric("berth_api_streams_active", series(events, "Subscribe"), 0)
	waitMetric("berth_api_requests_total", series(events, "Subscribe", "code", "OK"), 1)
	waitMetric("berth_api_request_duration_seconds_count", series(events, "Subscribe"), 1)

	d.MustCLI(t, "run", "-d", "busybox:latest", "sm-box", "--", "sh", "-c", "echo hi; sleep 1000")
	waitStatus(t, d, "sm-box", "running")
	follow := startStreaming(t, d, "logs", "-f", "sm-box")
	follow.waitFor(t, "the log", func(out string) bool { return out == "hi\n" })
	waitMetric("berth_api_streams_active", series(tasks, "Logs"), 1)
	follow.interrupt(t)
	waitMetric("berth_api_streams_active", series(tasks, "Logs"), 0)
	waitMetric("berth_api_requests_total", series(tasks, "Logs", "code", "OK"), 1)
	if r := d.CLI("logs", "sm-nosuch"); r.ExitCode == 0 {
		t.Errorf("logs of no container: %s", r)
	}
	waitMetric("berth_api_requests_total", series(tasks, "Logs", "code", "NotFound"), 1)
}
