// Command testsum runs `go test -json` with the given arguments, prints what
// a reader of `go test` needs (one line per package, the whole output of
// each failed test), and ends with a count of passed, failed and skipped
// tests and, for each skip, why. A green run that skipped half the suite
// then says so in its last lines instead of looking like a full pass.
//
//	go run ./hack/testsum -count=1 -timeout 15m ./...
//
// It exits non-zero when go test does or any test failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Elapsed    float64
	Output     string
}

type key struct{ pkg, test string }

// summary accumulates a run. Output is kept per test until the test ends,
// then dropped unless it failed or skipped (the skip reason is in it).
type summary struct {
	out                  io.Writer
	output               map[key][]string
	passed, failed       int
	skips                []skip
	failedPkgs, buildErr []string
}

type skip struct {
	pkg, test, why string
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, output: map[key][]string{}}
}

func (s *summary) add(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.out, e.Output)
	case "build-fail":
		s.buildErr = append(s.buildErr, e.ImportPath)
	case "output":
		s.output[k] = append(s.output[k], e.Output)
	case "pass", "fail", "skip":
		lines := s.output[k]
		delete(s.output, k)
		if e.Test == "" { // the package
			s.pkgDone(e, lines)
			return
		}
		switch e.Action {
		case "pass":
			s.passed++
		case "fail":
			s.failed++
			fmt.Fprintf(s.out, "--- FAIL: %s %s (%.2fs)\n", e.Package, e.Test, e.Elapsed)
			for _, l := range lines {
				fmt.Fprint(s.out, l)
			}
		case "skip":
			s.skips = append(s.skips, skip{e.Package, e.Test, skipReason(lines)})
		}
	}
}

func (s *summary) pkgDone(e event, lines []string) {
	switch {
	case e.Action == "fail":
		s.failedPkgs = append(s.failedPkgs, e.Package)
		// Output not attributed to a test: a panic, a timeout, TestMain.
		for _, l := range lines {
			if !strings.HasPrefix(l, "FAIL") && !strings.HasPrefix(l, "--- FAIL") {
				fmt.Fprint(s.out, l)
			}
		}
		fmt.Fprintf(s.out, "FAIL\t%s\t%.2fs\n", e.Package, e.Elapsed)
	case e.Action == "skip": // no test files
	default:
		fmt.Fprintf(s.out, "ok  \t%s\t%.2fs\n", e.Package, e.Elapsed)
	}
}

// skipReason is the message t.Skip printed: the test's output without the
// === and --- framing lines.
func skipReason(lines []string) string {
	var why []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		why = append(why, t)
	}
	if len(why) == 0 {
		return "(no reason given)"
	}
	return strings.Join(why, " / ")
}

// report prints the closing count; it returns whether the run passed.
func (s *summary) report(elapsed time.Duration) bool {
	fmt.Fprintf(s.out, "\ntests: %d passed, %d failed, %d skipped (%s)\n", s.passed, s.failed, len(s.skips), elapsed.Round(time.Second))
	if len(s.skips) > 0 {
		sort.Slice(s.skips, func(i, j int) bool {
			return s.skips[i].pkg+" "+s.skips[i].test < s.skips[j].pkg+" "+s.skips[j].test
		})
		fmt.Fprintln(s.out, "skipped:")
		for _, k := range s.skips {
			fmt.Fprintf(s.out, "  %s %s: %s\n", strings.TrimPrefix(k.pkg, "berth.dev/berth/"), k.test, k.why)
		}
	}
	for _, p := range s.buildErr {
		fmt.Fprintf(s.out, "build failed: %s\n", p)
	}
	if len(s.failedPkgs) > 0 {
		fmt.Fprintf(s.out, "failed packages: %s\n", strings.Join(s.failedPkgs, " "))
	}
	return s.failed == 0 && len(s.failedPkgs) == 0 && len(s.buildErr) == 0
}

// read feeds each line of r to s; lines that are not JSON (go test's own
// errors) are printed as they are.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(s.out, sc.Text())
			continue
		}
		s.add(e)
	}
	return sc.Err()
}

func main() {
	start := time.Now()
	cmd := exec.Command("go", append([]string{"test", "-json"}, os.Args[1:]...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	s := newSummary(os.Stdout)
	readErr := s.read(stdout)
	runErr := cmd.Wait()
	ok := s.report(time.Since(start))
	if readErr != nil {
		fmt.Fprintln(os.Stderr, "testsum: reading go test output:", readErr)
	}
	if runErr != nil || readErr != nil || !ok {
		if runErr != nil && ok {
			fmt.Fprintln(os.Stderr, "testsum: go test:", runErr)
		}
		os.Exit(1)
	}
}
