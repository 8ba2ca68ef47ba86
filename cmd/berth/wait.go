package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newWaitCmd) }

// Exit statuses of berth wait.
const (
	waitMet      = 0 // the condition holds
	waitTimedOut = 1 // the object exists; the condition did not hold in time
	waitError    = 2 // usage, berthd, or no such object at the deadline
)

// newWaitCmd is kubectl wait for berth's objects. It polls Get rather
// than watching events: a poll cannot miss a transition that happened
// before it started, and it needs nothing berthd does not already serve.
func newWaitCmd(g *globals) *cobra.Command {
	var forCond string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait (task|container|image|network) NAME --for condition=Ready [--timeout D]",
		Short: "Wait until a declared object's condition holds",
		Long: `Wait polls a declared object until its condition holds, as kubectl wait does:
--for condition=TYPE (status True), or condition=TYPE=False. Ready is what the
object's kind means by it: a Task runs and its startup and readiness probes pass,
a Container exists as declared, an Image is pulled and unpacked. The condition
must hold for the object's current generation. An object not declared yet is
waited for too (a manifest just written).

Exit status: 0 the condition holds; 1 the object exists and the condition did not
hold within --timeout; 2 a usage error, berthd unreachable, or no such object at
the deadline.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := kindArg(args[0])
			if err != nil {
				return &exitError{code: waitError, err: err}
			}
			ctype, want, err := parseFor(forCond)
			if err != nil {
				return &exitError{code: waitError, err: err}
			}
			ctx := cmd.Context()
			svc, done, err := g.manifestsClient(ctx)
			if err != nil {
				return &exitError{code: waitError, err: err}
			}
			defer done()
			// One deadline for the whole wait, not per poll, so --timeout
			// is the longest the command takes.
			ref := fmt.Sprintf("%s %s/%s", kind, g.namespace, args[1])
			deadline := time.Now().Add(timeout)
			for {
				met, why, err := conditionHolds(ctx, svc, g.namespace, kind, args[1], ctype, want)
				switch {
				// Only "not found" is waited out (a manifest just
				// written); any other error is berthd's and final.
				case err != nil && !errdefs.IsNotFound(err):
					return &exitError{code: waitError, err: err}
				case met:
					fmt.Fprintf(cmd.OutOrStdout(), "%s condition met\n", ref)
					return nil
				}
				if !time.Now().Before(deadline) {
					if err != nil {
						return &exitError{code: waitError, err: fmt.Errorf("%s: not found after %s", ref, timeout)}
					}
					return &exitError{code: waitTimedOut, err: fmt.Errorf("%s: timed out after %s waiting for condition %s=%s: %s", ref, timeout, ctype, want, why)}
				}
				select {
				case <-ctx.Done():
					return &exitError{code: waitError, err: ctx.Err()}
					// 200 ms between polls, but never past the deadline,
					// so a short --timeout is honoured to the poll.
				case <-time.After(min(200*time.Millisecond, time.Until(deadline))):
				}
			}
		},
	}
	cmd.Flags().StringVar(&forCond, "for", "condition=Ready", "condition=TYPE[=True|False]")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait")
	return cmd
}

// kindArg maps a kind as written (task, tasks, Task) to the kind.
func kindArg(s string) (spec.Kind, error) {
	k, err := spec.ParseKind(s) // get's and the API's rule
	if err == nil && k == "" {
		err = fmt.Errorf("wait needs one kind (task, container, image, network), not %q", s)
	}
	return k, err
}

// parseFor reads --for: condition=TYPE or condition=TYPE=True|False.
//
// The condition type is matched case-insensitively against the known
// ones and returned in its canonical case, so --for condition=ready
// works and a typo is refused instead of waiting for ever.
func parseFor(s string) (spec.ConditionType, spec.ConditionStatus, error) {
	rest, ok := strings.CutPrefix(s, "condition=")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("--for %q: want condition=TYPE[=True|False]", s)
	}
	t, status, hasStatus := strings.Cut(rest, "=")
	want := spec.ConditionTrue
	if hasStatus {
		switch strings.ToLower(status) {
		case "true":
		case "false":
			want = spec.ConditionFalse
		default:
			return "", "", fmt.Errorf("--for %q: the status is True or False", s)
		}
	}
	for _, known := range []spec.ConditionType{spec.ConditionReady, spec.ConditionProgressing, spec.ConditionDegraded, spec.ConditionConflict} {
		if strings.EqualFold(t, string(known)) {
			return known, want, nil
		}
	}
	return "", "", fmt.Errorf("--for %q: %q is not a condition (Ready, Progressing, Degraded, Conflict)", s, t)
}

// conditionHolds reads the object once: whether its condition has the
// wanted status for its current generation, and if not, why.
func conditionHolds(ctx context.Context, svc manifestsapi.ManifestsService, ns string, kind spec.Kind, name string, t spec.ConditionType, want spec.ConditionStatus) (bool, string, error) {
	resp, err := svc.Get(ctx, &manifestsapi.GetRequest{Namespace: ns, Kind: string(kind), Name: name})
	if err != nil {
		return false, "", errgrpc.ToNative(err)
	}
	if len(resp.Objects) == 0 {
		return false, "", fmt.Errorf("%s %s/%s: %w", kind, ns, name, errdefs.ErrNotFound)
	}
	return objectCondition(resp.Objects[0], t, want)
}

// objectCondition says whether o's condition t has status want for o's
// current generation, and if not, why. It is the one rule of "ready" the
// CLI has: berth wait and apply --wait both use it, so they cannot
// disagree on when an object is done.
func objectCondition(o *manifestsapi.Object, t spec.ConditionType, want spec.ConditionStatus) (bool, string, error) {
	var v objectView
	if err := json.Unmarshal(o.Json, &v); err != nil {
		return false, "", errors.Join(errdefs.ErrUnknown, err)
	}
	c, ok := v.Status.Condition(t)
	switch {
	case !ok:
		return false, "not reconciled yet", nil
	case v.Status.ObservedGeneration < o.Generation:
		return false, fmt.Sprintf("generation %d not observed yet (at %d)", o.Generation, v.Status.ObservedGeneration), nil
	case c.Status != want:
		why := string(c.Status)
		if c.Reason != "" {
			why += " (" + c.Reason + ")"
		}
		if c.Message != "" {
			why += ": " + c.Message
		}
		return false, why, nil
	}
	return true, "", nil
}
