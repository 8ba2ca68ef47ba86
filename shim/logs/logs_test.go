package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func readAll(t *testing.T, path string, opts ReadOptions) []string {
	t.Helper()
	var got []string
	err := Read(context.Background(), path, opts, func(e Entry) error {
		got = append(got, e.Stream+" "+string(e.Text))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWriter_Rotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	const maxSize, maxFiles = 1024, 3
	w, err := NewWriter(path, maxSize, maxFiles)
	if err != nil {
		t.Fatal(err)
	}
	var input strings.Builder
	for i := range 500 {
		fmt.Fprintf(&input, "line %03d\n", i)
	}
	if err := Copy(w, Stdout, strings.NewReader(input.String()), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := Files(path)
	want := []string{path + ".2", path + ".1", path}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Fatalf("files (-want +got):\n%s", diff)
	}
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > maxSize {
			t.Errorf("%s: %d bytes, want <= %d", f, st.Size(), maxSize)
		}
	}
	got := readAll(t, path, ReadOptions{Tail: -1})
	// What is kept is a contiguous run ending with the last line.
	if len(got) == 0 || got[len(got)-1] != "stdout line 499" {
		t.Fatalf("last record: got %v", got[max(len(got)-1, 0):])
	}
	first := 500 - len(got)
	for i, g := range got {
		if want := fmt.Sprintf("stdout line %03d", first+i); g != want {
			t.Fatalf("record %d: got %q, want %q", i, g, want)
		}
	}
	tail := readAll(t, path, ReadOptions{Tail: 3})
	if diff := cmp.Diff([]string{"stdout line 497", "stdout line 498", "stdout line 499"}, tail); diff != "" {
		t.Errorf("tail 3 (-want +got):\n%s", diff)
	}
}

func TestCopy_LongLinesAndCR(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	w, err := NewWriter(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", MaxLine+10)
	var tee strings.Builder
	in := "tty line\r\n" + long + "\nno newline at end"
	if err := Copy(w, Stderr, strings.NewReader(in), func(b []byte) { tee.Write(b) }); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if tee.String() != in {
		t.Errorf("tee got %d bytes, want the input unchanged (%d)", tee.Len(), len(in))
	}
	var got []Entry
	_ = Read(context.Background(), path, ReadOptions{Tail: -1}, func(e Entry) error {
		e.Text = append([]byte(nil), e.Text...)
		got = append(got, e)
		return nil
	})
	if len(got) != 4 {
		t.Fatalf("got %d records, want 4", len(got))
	}
	if string(got[0].Text) != "tty line" || got[0].Partial {
		t.Errorf("record 0: got %q partial=%v", got[0].Text, got[0].Partial)
	}
	if !got[1].Partial || got[2].Partial || string(got[1].Text)+string(got[2].Text) != long {
		t.Errorf("long line: want a P record then an F record joining to the line")
	}
	if string(got[3].Text) != "no newline at end" || got[3].Stream != Stderr {
		t.Errorf("record 3: got %+v", got[3])
	}
}

func TestRead_FollowAcrossRotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	w, err := NewWriter(path, 200, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lines := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, ReadOptions{Tail: -1, Follow: true, Poll: 10 * time.Millisecond}, func(e Entry) error {
			lines <- string(e.Text)
			return nil
		})
	}()
	for i := range 20 { // 20 records of ~50 bytes rotate several times
		if err := w.WriteRecord(Stdout, false, fmt.Appendf(nil, "follow %02d", i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // pace the writer so the follower sees rotations happen
	}
	for i := range 20 {
		select {
		case got := <-lines:
			if want := fmt.Sprintf("follow %02d", i); got != want {
				t.Fatalf("record %d: got %q, want %q", i, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("follow: record %d never came", i)
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Read: got %v, want context.Canceled", err)
	}
}

// TestRead_Window: --since/--until select records by the time they were
// written, across rotated files, and --tail counts among what they keep.
func TestRead_Window(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	base := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	rec := func(i int) string {
		return fmt.Sprintf("%s stdout F line %d\n", base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339Nano), i)
	}
	// Records 0..4 in a rotated file, 5..9 in the current one.
	var old, cur strings.Builder
	for i := range 10 {
		if i < 5 {
			old.WriteString(rec(i))
		} else {
			cur.WriteString(rec(i))
		}
	}
	if err := os.WriteFile(path+".1", []byte(old.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(cur.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	lines := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, fmt.Sprintf("stdout line %d", i))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opts ReadOptions
		want []string
	}{
		{"since", ReadOptions{Tail: -1, Since: at(7)}, lines(7, 8, 9)},
		{"until", ReadOptions{Tail: -1, Until: at(2)}, lines(0, 1)},
		{"window across rotation", ReadOptions{Tail: -1, Since: at(3), Until: at(6)}, lines(3, 4, 5)},
		{"tail counts inside the window", ReadOptions{Tail: 2, Since: at(1), Until: at(8)}, lines(6, 7)},
		{"since after everything", ReadOptions{Tail: -1, Since: at(20)}, nil},
		{"until stops a follower", ReadOptions{Tail: -1, Since: at(8), Until: at(9), Follow: true}, lines(8)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, readAll(t, path, tc.opts)); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestWriter_ExternalRotation: with a negative max size the writer never
// rotates, and after the file is renamed away (as the kubelet rotates) it
// writes to a new file at the path.
func TestWriter_ExternalRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "0.log")
	w, err := NewWriter(p, -1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.WriteRecord(Stdout, false, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, p+".20261204-000000"); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.checked = time.Time{} // the next write checks at once
	w.mu.Unlock()
	if err := w.WriteRecord(Stdout, false, []byte("after")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(got), " stdout F after\n") || strings.Contains(string(got), "before") {
		t.Errorf("new file: got %q, want only the record written after the rename", got)
	}
}

// TestCopy_FlushesAnUnfinishedLine: output without its newline (a prompt,
// `echo -n`) on a pipe is written as a partial record once it has waited
// FlushAfter, and the rest of the line ends it.
func TestCopy_FlushesAnUnfinishedLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	w, err := NewWriter(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Copy(w, Stdout, pr, nil) }()
	records := func() []Entry {
		var got []Entry
		_ = Read(context.Background(), path, ReadOptions{Tail: -1}, func(e Entry) error {
			e.Text = append([]byte(nil), e.Text...)
			got = append(got, e)
			return nil
		})
		return got
	}
	if _, err := pw.WriteString("prompt: "); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(records()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := records()
	if len(got) != 1 || !got[0].Partial || string(got[0].Text) != "prompt: " {
		t.Fatalf("after an unfinished line: got %+v, want one partial record", got)
	}
	if _, err := pw.WriteString("answer\n"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.Close()
	got = records()
	if len(got) != 2 || got[1].Partial || string(got[0].Text)+string(got[1].Text) != "prompt: answer" {
		t.Errorf("got %+v, want P %q then F %q", got, "prompt: ", "answer")
	}
}
