package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSummary runs go test -json on a throwaway module with a pass, a
// failure, a skip with a reason and a subtest skip, and checks what the
// summary says of each.
func TestSummary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.22\n")
	write("m_test.go", `package m

import "testing"

func TestPass(t *testing.T) {}
func TestFail(t *testing.T) { t.Log("the detail"); t.Fatal("boom") }
func TestSkip(t *testing.T) { t.Skip("skipping: needs root") }
func TestSub(t *testing.T) {
	t.Run("a", func(t *testing.T) {})
	t.Run("b", func(t *testing.T) { t.Skipf("test image %s not built", "debian") })
}
`)
	cmd := exec.Command("go", "test", "-json", "-count=1", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, _ := cmd.Output() // exits 1: TestFail fails
	var buf bytes.Buffer
	s := newSummary(&buf)
	if err := s.read(bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	if s.report(time.Second) {
		t.Error("report says the run passed; TestFail failed")
	}
	got := buf.String()
	for _, want := range []string{
		"--- FAIL: example.com/m TestFail",
		"the detail",
		"tests: 3 passed, 1 failed, 2 skipped",
		"example.com/m TestSkip: m_test.go:7: skipping: needs root",
		"example.com/m TestSub/b: m_test.go:10: test image debian not built",
		"failed packages: example.com/m",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "TestPass") {
		t.Errorf("summary prints the output of a passing test:\n%s", got)
	}
}
