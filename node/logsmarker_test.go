package node

import (
	"testing"
	"time"

	"berth.dev/berth/observed"
)

func TestRestartMarker(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 5, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		last *observed.Exit
		want string
	}{
		{nil, "--- berth: web restarted at 2026-12-04T09:00:00Z ---"},
		{&observed.Exit{ExitStatus: 1}, "--- berth: web restarted at 2026-12-04T09:00:00Z (its last run exited with status 1) ---"},
		{&observed.Exit{ExitStatus: 137, OOMKilled: true}, "--- berth: web restarted at 2026-12-04T09:00:00Z (its last run was killed for exceeding its memory limit, OOMKilled, status 137) ---"},
	} {
		if got := restartMarker("web", at, tc.last); got != tc.want {
			t.Errorf("restartMarker(%+v) = %q, want %q", tc.last, got, tc.want)
		}
	}
}
