package harness

import (
	"os"
	"testing"
	"time"
)

// Eventually polls cond until it returns true, failing t with the last
// message cond returned if timeout passes first. The interval starts at 5 ms
// and doubles up to 250 ms, so fast conditions cost little and slow ones do
// not spin. Call it from the test's goroutine.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	if msg, ok := poll(timeout, cond); !ok {
		t.Fatalf("condition not met within %v: %s", timeout, msg)
	}
}

// poll is Eventually without the test: it returns the last message and
// whether cond became true before the deadline.
func poll(timeout time.Duration, cond func() (bool, string)) (string, bool) {
	deadline := time.Now().Add(timeout)
	interval := 5 * time.Millisecond
	for {
		ok, msg := cond()
		if ok {
			return msg, true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return msg, false
		}
		time.Sleep(min(interval, left))
		interval = min(2*interval, 250*time.Millisecond)
	}
}

// logTail returns up to the last max bytes of the file at path, for failure
// messages.
func logTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	off := int64(0)
	prefix := ""
	if st.Size() > max {
		off = st.Size() - max
		prefix = "…(truncated)\n"
	}
	buf := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(buf, off)
	return prefix + string(buf[:n])
}
