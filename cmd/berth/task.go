package main

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"

	tasksapi "berth.dev/berth/api/tasks/v1"
	"berth.dev/berth/internal/units"
	"berth.dev/berth/spec"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() {
	extraCommands = append(extraCommands, newTaskCmd, func(g *globals) *cobra.Command { return newExecCmd(g, true) })
}

// taskView is a task as -o json/yaml prints it; ExitedAt is a pointer so
// a running task has none instead of a 1970 one.
type taskView struct {
	ID         string     `json:"id"`
	Pid        uint32     `json:"pid"`
	Status     string     `json:"status"`
	ExitStatus uint32     `json:"exitStatus"`
	ExitedAt   *time.Time `json:"exitedAt,omitempty"`
	OOMKilled  bool       `json:"oomKilled"`
}

func toTaskView(t *tasksapi.Task) taskView {
	v := taskView{ID: t.Id, Pid: t.Pid, Status: t.Status, ExitStatus: t.ExitStatus, OOMKilled: t.OomKilled}
	if t.ExitedAt != nil {
		at := t.ExitedAt.AsTime()
		v.ExitedAt = &at
	}
	return v
}

// parseSignal accepts SIGTERM, TERM or 15.
//
// It is spec's parser, so a name means the same here as in a manifest's
// stopSignal.
func parseSignal(s string) (syscall.Signal, error) { return spec.ParseSignal(s) }

// newTaskCmd is the imperative task lifecycle (ctr tasks …). Tasks made
// here are the user's: no controller restarts or stops them.
func newTaskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "task", Aliases: []string{"tasks", "t"}, Short: "Manage tasks (a container's running process)"}
	// run dials berthd and calls fn with a tasks client; signals to berth
	// must not cut an RPC short half-way.
	// One dial per subcommand, closed when it returns: the tasks
	// subcommands are single calls.
	run := func(cmd *cobra.Command, fn func(context.Context, tasksapi.TasksClient) error) error {
		ctx := cmd.Context()
		c, err := g.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(ctx, tasksapi.NewTasksClient(c))
	}
	var detach bool
	start := &cobra.Command{
		Use: "start [-d] ID", Short: "Create and start the container's task (attached unless -d)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, func(ctx context.Context, tasks tasksapi.TasksClient) error {
				ns, id := g.namespace, args[0]
				// A Ctrl-C reaches the container through its terminal or
				// is forwarded as a signal; it must not cancel the create
				// or start half-way and leave a task nobody waits for.
				ctx = context.WithoutCancel(ctx)
				// Detached: no FIFOs, so the output goes only to the
				// container's log (berth logs), as docker run -d.
				if detach {
					if _, err := tasks.Create(ctx, &tasksapi.CreateTaskRequest{Namespace: ns, ContainerId: id}); err != nil {
						return err
					}
					_, err := tasks.Start(ctx, &tasksapi.StartTaskRequest{Namespace: ns, ContainerId: id})
					return err
				}
				// The FIFOs exist before the task is created so the shim
				// opens them at create and no early output is lost.
				f, err := newFIFOs(false, true)
				if err != nil {
					return err
				}
				defer f.close()
				if _, err := tasks.Create(ctx, &tasksapi.CreateTaskRequest{Namespace: ns, ContainerId: id, Stdio: f.stdio()}); err != nil {
					return err
				}
				status, err := attachAndWait(ctx, tasks, ns, id, "", f, func() error {
					_, err := tasks.Start(ctx, &tasksapi.StartTaskRequest{Namespace: ns, ContainerId: id})
					return err
				})
				if err != nil {
					return err
				}
				// The task's exit status becomes berth's, so a script
				// can run a container like a command.
				if status != 0 {
					return &exitError{code: int(status)}
				}
				return nil
			})
		},
	}
	start.Flags().BoolVarP(&detach, "detach", "d", false, "return once started")
	var output string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the namespace's tasks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, func(ctx context.Context, tasks tasksapi.TasksClient) error {
				resp, err := tasks.List(ctx, &tasksapi.ListTasksRequest{Namespace: g.namespace})
				if err != nil {
					return err
				}
				var views []taskView
				for _, t := range resp.Tasks {
					views = append(views, toTaskView(t))
				}
				return printList(cmd.OutOrStdout(), output, views, []string{"TASK", "PID", "STATUS", "EXIT"}, func(v taskView) []string {
					exit := "-"
					// An exit code is shown only for a task that ended:
					// 0 for a running one would read as success.
					if v.Status == string(spec.TaskPhaseStopped) {
						exit = strconv.Itoa(int(v.ExitStatus))
						if v.OOMKilled {
							exit += " (oom)"
						}
					}
					return []string{v.ID, strconv.Itoa(int(v.Pid)), v.Status, exit}
				})
			})
		},
	}
	addOutputFlag(ls, &output)
	var sigName, execID string
	var all bool
	// kill only signals; `task rm -f` or `berth stop` wait for the end.
	kill := &cobra.Command{
		Use: "kill [-s SIGNAL] [--all] ID", Short: "Signal a task (SIGTERM by default)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig, err := parseSignal(sigName)
			if err != nil {
				return err
			}
			return run(cmd, func(ctx context.Context, tasks tasksapi.TasksClient) error {
				_, err := tasks.Kill(ctx, &tasksapi.KillTaskRequest{Namespace: g.namespace, ContainerId: args[0], ExecId: execID, Signal: uint32(sig), All: all})
				return err
			})
		},
	}
	// SIGTERM by default, not the container's stop signal: kill sends the
	// signal the user names, while the container's stop signal is what
	// berthd's own stops send (a Task set to Stopped, a recreate).
	kill.Flags().StringVarP(&sigName, "signal", "s", "SIGTERM", "signal name or number")
	kill.Flags().BoolVarP(&all, "all", "a", false, "signal every process of the container")
	kill.Flags().StringVar(&execID, "exec-id", "", "signal this exec process instead")
	// pause and resume freeze and thaw the cgroup; a paused task keeps its
	// memory and its pid, so resume continues where it stopped.
	pause := &cobra.Command{
		Use: "pause ID", Short: "Freeze a task", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, func(ctx context.Context, tasks tasksapi.TasksClient) error {
				_, err := tasks.Pause(ctx, &tasksapi.PauseTaskRequest{Namespace: g.namespace, ContainerId: args[0]})
				return err
			})
		},
	}
	resume := &cobra.Command{
		Use: "resume ID", Short: "Thaw a paused task", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, func(ctx context.Context, tasks tasksapi.TasksClient) error {
				_, err := tasks.Resume(ctx, &tasksapi.ResumeTaskRequest{Namespace: g.namespace, ContainerId: args[0]})
				return err
			})
		},
	}
	var force bool
	// rm deletes the task record and its shim; the container (and its
	// snapshot) stays, so the task can be started again.
	rm := &cobra.Command{
		Use: "rm [-f] ID...", Aliases: []string{"delete"}, Short: "Delete stopped tasks (-f kills running ones first)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, func(ctx context.Context, tasks tasksapi.TasksClient) error {
				return forEach(args, func(id string) error {
					_, err := tasks.Delete(ctx, &tasksapi.DeleteTaskRequest{Namespace: g.namespace, ContainerId: id, Force: force})
					return err
				})
			})
		},
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "kill a running task first")
	var mOut string
	metrics := &cobra.Command{
		Use: "metrics ID", Aliases: []string{"stats"}, Short: "Show a task's cgroup metrics", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, func(ctx context.Context, tasks tasksapi.TasksClient) error {
				m, err := tasks.Metrics(ctx, &tasksapi.MetricsRequest{Namespace: g.namespace, ContainerId: args[0]})
				if err != nil {
					return err
				}
				// The table is human units; json and yaml keep the raw
				// counters for scripts.
				if mOut == "table" {
					return printList(cmd.OutOrStdout(), mOut, []*tasksapi.MetricsResponse{m},
						[]string{"CPU", "MEMORY", "LIMIT", "MAX", "OOM KILLS", "PIDS", "PIDS LIMIT"}, func(m *tasksapi.MetricsResponse) []string {
							return []string{time.Duration(m.CpuUsageNs).String(), units.Bytes(int64(m.MemoryUsage)), units.Bytes(int64(m.MemoryLimit)),
								units.Bytes(int64(m.MemoryMaxUsage)), strconv.FormatUint(m.OomKills, 10), strconv.FormatUint(m.PidsCurrent, 10), strconv.FormatUint(m.PidsLimit, 10)}
						})
				}
				return printObject(cmd.OutOrStdout(), mOut, map[string]any{"cpuUsageNs": m.CpuUsageNs, "memoryUsage": m.MemoryUsage,
					"memoryLimit": m.MemoryLimit, "memoryMaxUsage": m.MemoryMaxUsage, "oomKills": m.OomKills,
					"pidsCurrent": m.PidsCurrent, "pidsLimit": m.PidsLimit})
			})
		},
	}
	addOutputFlag(metrics, &mOut)
	var psOut string
	// ps lists the container's pids as the shim reports them (host pids)
	// with each one's command name from /proc, read by berthd on the node.
	ps := &cobra.Command{
		Use: "ps ID", Short: "List the processes of a task's container", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, func(ctx context.Context, tasks tasksapi.TasksClient) error {
				r, err := tasks.Pids(ctx, &tasksapi.PidsRequest{Namespace: g.namespace, ContainerId: args[0]})
				if err != nil {
					return err
				}
				type proc struct {
					Pid     uint32 `json:"pid"`
					Command string `json:"command"`
				}
				var ps []proc
				for _, p := range r.Processes {
					ps = append(ps, proc{p.Pid, p.Command})
				}
				return printList(cmd.OutOrStdout(), psOut, ps, []string{"PID", "COMMAND"}, func(p proc) []string {
					return []string{strconv.Itoa(int(p.Pid)), p.Command}
				})
			})
		},
	}
	addOutputFlag(ps, &psOut)
	cmd.AddCommand(start, ls, kill, pause, resume, rm, metrics, ps, newExecCmd(g, false))
	return cmd
}

// newExecCmd is `task exec` (topLevel false: stdin always attached, --cwd)
// and `berth exec` (the nerdctl/podman shape: -i attaches stdin, -w, -e).
//
// An exec gets an ID from the time and the CLI's pid when none is given:
// unique enough on one node, and readable in the shim's logs. The exec is
// deleted after it ends so its record does not accumulate in the shim.
func newExecCmd(g *globals, topLevel bool) *cobra.Command {
	var execID, user, cwd string
	var env []string
	var tty, detach, interactive bool
	use, short := "exec [--exec-id X] [-t] ID [--] CMD...", "Run a process inside a task's container, attached"
	if topLevel {
		use, short = "exec [-i] [-t] [-u USER] [-w DIR] [-e K=V] ID [--] CMD...", "Run a process inside a running task's container"
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, id, argv := g.namespace, args[0], commandArgs(args[1:])
			if len(argv) == 0 {
				return fmt.Errorf("exec %s: no command given after --", id)
			}
			ctx := context.WithoutCancel(cmd.Context())
			c, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			tasks := tasksapi.NewTasksClient(c)
			if execID == "" {
				execID = fmt.Sprintf("exec-%d-%d", time.Now().UnixNano()%1e9, unix.Getpid())
			}
			req := &tasksapi.ExecProcessRequest{Namespace: ns, ContainerId: id, ExecId: execID, Args: argv, Env: env, Cwd: cwd, User: user}
			if detach {
				if _, err := tasks.Exec(ctx, req); err != nil {
					return err
				}
				_, err := tasks.StartExec(ctx, &tasksapi.StartExecRequest{Namespace: ns, ContainerId: id, ExecId: execID})
				return err
			}
			f, err := newFIFOs(tty, interactive || !topLevel)
			if err != nil {
				return err
			}
			defer f.close()
			req.Stdio = f.stdio()
			if _, err := tasks.Exec(ctx, req); err != nil {
				return err
			}
			status, err := attachAndWait(ctx, tasks, ns, id, execID, f, func() error {
				_, err := tasks.StartExec(ctx, &tasksapi.StartExecRequest{Namespace: ns, ContainerId: id, ExecId: execID})
				return err
			})
			_, _ = tasks.DeleteExec(ctx, &tasksapi.DeleteExecRequest{Namespace: ns, ContainerId: id, ExecId: execID})
			if err != nil {
				return err
			}
			if status != 0 {
				return &exitError{code: int(status)}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&execID, "exec-id", "", "id of the exec process (default: generated)")
	fl.BoolVarP(&tty, "tty", "t", false, "allocate a terminal")
	fl.BoolVarP(&detach, "detach", "d", false, "start it and return")
	fl.StringVarP(&user, "user", "u", "", "user[:group] to run as (name or id, resolved in the container's /etc/passwd)")
	if topLevel {
		fl.BoolVarP(&interactive, "interactive", "i", false, "attach stdin")
		fl.StringVarP(&cwd, "workdir", "w", "", "working directory inside the container")
		fl.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	} else {
		fl.StringVar(&cwd, "cwd", "", "working directory")
		fl.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	}
	fl.SetInterspersed(false)
	return cmd
}
