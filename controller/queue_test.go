package controller

import (
	"sync"
	"testing"
	"time"
)

func TestQueue_CollapsesRepeatedAdds(t *testing.T) {
	t.Parallel()
	q := NewQueue[string](time.Millisecond, time.Second)
	for i := 0; i < 5; i++ {
		q.Add("a")
	}
	q.Add("b")
	if got := q.Len(); got != 2 {
		t.Fatalf("len: got %d, want 2", got)
	}
	k, _ := q.Get()
	if k != "a" {
		t.Fatalf("first: got %q, want a", k)
	}
}

func TestQueue_AddWhileProcessingRequeuesAfterDone(t *testing.T) {
	t.Parallel()
	q := NewQueue[string](time.Millisecond, time.Second)
	q.Add("a")
	k, _ := q.Get()
	q.Add(k) // changed while being processed
	if got := q.Len(); got != 0 {
		t.Fatalf("a key in processing must not be handed out twice: len %d", got)
	}
	q.Done(k)
	if got := q.Len(); got != 1 {
		t.Fatalf("after Done: len %d, want 1", got)
	}
}

func TestQueue_RetryBacksOffAndForgetResets(t *testing.T) {
	t.Parallel()
	q := NewQueue[string](10*time.Millisecond, 80*time.Millisecond)
	var delays []time.Duration
	for i := 0; i < 6; i++ {
		delays = append(delays, q.Retry("a"))
	}
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, d := range delays {
		w := want[i] * time.Millisecond
		if d < w*9/10 || d > w*11/10 {
			t.Errorf("retry %d: got %v, want %v ±10%%", i, d, w)
		}
	}
	if q.Failures("a") != 6 {
		t.Errorf("failures: got %d, want 6", q.Failures("a"))
	}
	q.Forget("a")
	if q.Failures("a") != 0 {
		t.Errorf("after forget: %d", q.Failures("a"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("retried key never came back")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestQueue_ShutDownWakesGetters(t *testing.T) {
	t.Parallel()
	q := NewQueue[int](time.Millisecond, time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := q.Get(); ok {
				t.Error("Get returned a key after shutdown")
			}
		}()
	}
	q.ShutDown()
	wg.Wait()
}
