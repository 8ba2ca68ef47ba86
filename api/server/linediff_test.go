package server

import (
	"strings"
	"testing"
)

func TestLineDiff(t *testing.T) {
	t.Parallel()
	long := func(changed string) string {
		var b strings.Builder
		for i := 1; i <= 20; i++ {
			if i == 10 {
				b.WriteString(changed + "\n")
				continue
			}
			b.WriteString("line" + string(rune('a'+i)) + "\n")
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"equal", "x\ny\n", "x\ny\n", ""},
		{"from nothing", "", "a\nb\n", "--- A\n+++ B\n@@ -1,0 +1,2 @@\n+a\n+b\n"},
		{"one line changed", "a\nb\nc\n", "a\nB\nc\n", "--- A\n+++ B\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"context only", long("old"), long("new"),
			"--- A\n+++ B\n@@ -7,7 +7,7 @@\n lineh\n linei\n linej\n-old\n+new\n linel\n linem\n linen\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LineDiff("A", "B", tc.a, tc.b); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
