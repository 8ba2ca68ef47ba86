package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	tasksapi "berth.dev/berth/api/tasks/v1"
	"berth.dev/berth/internal/units"
	"berth.dev/berth/spec"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newStatsCmd) }

// statView is one row of berth stats.
type statView struct {
	Namespace     string  `json:"namespace"`
	Name          string  `json:"name"`
	CPUPercent    float64 `json:"cpuPercent"`
	MemoryUsage   uint64  `json:"memoryUsage"`
	MemoryLimit   uint64  `json:"memoryLimit"`
	MemoryPercent float64 `json:"memoryPercent"`
	Pids          uint64  `json:"pids"`
	// NetRxBytes and NetTxBytes are a bridged container's (absent for
	// host and none).
	NetRxBytes *uint64 `json:"netRxBytes,omitempty"`
	NetTxBytes *uint64 `json:"netTxBytes,omitempty"`
}

// cpuSample is one reading of a task's cumulative CPU time.
//
// CPU % needs two readings; the previous one is kept per task between
// refreshes, so a task that appears later gets a figure from its second
// refresh on.
type cpuSample struct {
	ns uint64
	at time.Time
}

func newStatsCmd(g *globals) *cobra.Command {
	var noStream bool
	var output string
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "stats [NAME...]",
		Short: "Show running tasks' CPU, memory and pids, live",
		Long: `Show the namespace's running tasks (or the named ones) like docker stats:
CPU % (of one CPU, over the last interval), memory usage and limit, pids.
The table refreshes every --interval until interrupted; --no-stream prints
it once (CPU % measured over one interval).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			tc := tasksapi.NewTasksClient(c)
			prev := map[string]cpuSample{}
			// A first reading so that the first table has a CPU figure.
			if _, err := readStats(ctx, tc, g.namespace, args, prev); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			f, isFile := w.(*os.File)
			// The screen is cleared between refreshes only on a terminal;
			// piped output gets one table after another, which a script can
			// split.
			tty := isFile && isTerminal(f)
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
				rows, err := readStats(ctx, tc, g.namespace, args, prev)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if tty && !noStream {
					fmt.Fprint(w, "\033[2J\033[H") // clear, home
				}
				if err := printStats(w, output, rows); err != nil {
					return err
				}
				if noStream {
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print once and exit")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh interval")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json|yaml")
	return cmd
}

// readStats reads every running task's metrics (only names, if given) and
// computes CPU % against the previous reading in prev, which it updates.
func readStats(ctx context.Context, tc tasksapi.TasksClient, ns string, names []string, prev map[string]cpuSample) ([]statView, error) {
	list, err := tc.List(ctx, &tasksapi.ListTasksRequest{Namespace: ns})
	if err != nil {
		return nil, err
	}
	var rows []statView
	for _, tk := range list.Tasks {
		// Only live tasks: a created or stopped one has no cgroup
		// figures worth a row.
		if p := spec.TaskPhase(tk.Status); p != spec.TaskPhaseRunning && p != spec.TaskPhasePaused {
			continue
		}
		if len(names) > 0 && !slices.Contains(names, tk.Id) {
			continue
		}
		// One call per task: a task that exits between the list and its
		// metrics is skipped, not an error, since stats is a snapshot.
		m, err := tc.Metrics(ctx, &tasksapi.MetricsRequest{Namespace: ns, ContainerId: tk.Id})
		if err != nil {
			continue // exited meanwhile
		}
		now := time.Now()
		// The shim's time of reading, not ours, so the interval is the
		// one the counters were read across.
		if m.Timestamp != nil {
			now = m.Timestamp.AsTime()
		}
		v := statView{Namespace: ns, Name: tk.Id, MemoryUsage: m.MemoryUsage, Pids: m.PidsCurrent}
		// Pointers, so -o json shows no net fields at all for a
		// container without a network of its own, rather than zeros.
		if m.HasNetwork {
			rx, tx := m.NetRxBytes, m.NetTxBytes
			v.NetRxBytes, v.NetTxBytes = &rx, &tx
		}
		if m.MemoryLimit < 1<<62 { // cgroup v1 reports "no limit" as ~MaxInt64
			v.MemoryLimit = m.MemoryLimit
		}
		if v.MemoryLimit > 0 {
			v.MemoryPercent = 100 * float64(m.MemoryUsage) / float64(v.MemoryLimit)
		}
		if p, ok := prev[tk.Id]; ok && now.After(p.at) && m.CpuUsageNs >= p.ns {
			v.CPUPercent = 100 * float64(m.CpuUsageNs-p.ns) / float64(now.Sub(p.at).Nanoseconds())
		}
		prev[tk.Id] = cpuSample{ns: m.CpuUsageNs, at: now}
		rows = append(rows, v)
	}
	return rows, nil
}

// printStats has docker stats' columns, in its order, so eyes and
// scripts trained on docker find them.
func printStats(w io.Writer, format string, rows []statView) error {
	return printList(w, format, rows, []string{"NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "PIDS"}, func(v statView) []string {
		limit := "-"
		if v.MemoryLimit > 0 {
			limit = units.Bytes(int64(v.MemoryLimit))
		}
		return []string{v.Name, fmt.Sprintf("%.2f%%", v.CPUPercent),
			units.Bytes(int64(v.MemoryUsage)) + " / " + limit,
			fmt.Sprintf("%.2f%%", v.MemoryPercent), netIO(v), fmt.Sprint(v.Pids)}
	})
}

// netIO is the NET I/O column: received / sent, "-" without a network.
func netIO(v statView) string {
	if v.NetRxBytes == nil || v.NetTxBytes == nil {
		return "-"
	}
	return units.Bytes(int64(*v.NetRxBytes)) + " / " + units.Bytes(int64(*v.NetTxBytes))
}
