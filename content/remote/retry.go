package remote

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy says how answers that mean "later" (429, 5xx) are retried.
type RetryPolicy struct {
	// Attempts is how many times a request is retried; 0 is 5, negative
	// none.
	Attempts int
	// Base is the first backoff, doubled each retry with jitter; 0 is
	// 500ms.
	Base time.Duration
	// Max caps one wait, Retry-After included; 0 is 30s.
	Max time.Duration
	// OnRetry, when set, hears of each wait before it starts.
	OnRetry func(RetryEvent)
}

// RetryEvent says why a request waits and for how long.
type RetryEvent struct {
	Host    string
	Method  string
	Path    string
	Status  int
	Attempt int // 1 for the first retry
	Wait    time.Duration
	// RetryAfter says the wait is the server's Retry-After (capped).
	RetryAfter bool
}

func (p RetryPolicy) attempts() int {
	switch {
	case p.Attempts < 0:
		return 0
	case p.Attempts == 0:
		return 5
	}
	return p.Attempts
}

func (p RetryPolicy) base() time.Duration {
	if p.Base > 0 {
		return p.Base
	}
	return 500 * time.Millisecond
}

func (p RetryPolicy) max() time.Duration {
	if p.Max > 0 {
		return p.Max
	}
	return 30 * time.Second
}

// maxTotal bounds the time all retries of one request can wait.
func (p RetryPolicy) maxTotal() time.Duration { return time.Duration(p.attempts()) * p.max() }

// backoff is the wait before retry n (0-based): base·2ⁿ capped at max,
// jittered down to half so that many nodes hit by one outage spread out.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.base() << min(n, 16)
	if d > p.max() || d <= 0 {
		d = p.max()
	}
	return d/2 + rand.N(d/2+1)
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func retryable(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusBadGateway ||
		code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout ||
		code == http.StatusInternalServerError
}

// retrier retries requests answered 429 or 5xx. It sits under ggcr's auth
// transport, so token requests are retried too, and above the policy
// transport.
type retrier struct {
	inner  http.RoundTripper
	policy RetryPolicy
	host   string
}

func (r *retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		resp, err := r.inner.RoundTrip(req)
		if err != nil || !retryable(resp.StatusCode) || n >= r.policy.attempts() {
			return resp, err
		}
		if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
			return resp, nil // cannot send the body again
		}
		wait, fromServer := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if fromServer {
			wait = min(wait, r.policy.max())
		} else {
			wait = r.policy.backoff(n)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		ev := RetryEvent{Host: req.URL.Host, Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode, Attempt: n + 1, Wait: wait, RetryAfter: fromServer}
		slog.Info("content: registry asked to wait, retrying", "host", ev.Host, "method", ev.Method, "path", ev.Path, "status", ev.Status, "attempt", ev.Attempt, "wait", ev.Wait)
		if r.policy.OnRetry != nil {
			r.policy.OnRetry(ev)
		}
		if err := waitPaused(req.Context(), wait); err != nil {
			return nil, err
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// waitPaused sleeps d with the request's watchdog (if any) paused: a wait
// the server asked for is not a stall.
func waitPaused(ctx context.Context, d time.Duration) error {
	wd, _ := ctx.Value(watchdogKey{}).(*watchdog)
	if wd != nil {
		wd.pause()
		defer wd.kick()
	}
	return sleepCtx(ctx, d)
}

// sleepCtx waits d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type watchdogKey struct{}

func withWatchdog(ctx context.Context, wd *watchdog) context.Context {
	return context.WithValue(ctx, watchdogKey{}, wd)
}
