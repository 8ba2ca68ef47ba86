package server

import (
	"fmt"
	"strings"
)

// diffContext is how many unchanged lines are shown around a change.
const diffContext = 3

// maxDiffCells bounds the LCS table; past it the whole of a is shown as
// removed and the whole of b as added (manifests are far smaller).
const maxDiffCells = 4 << 20

// LineDiff is a unified diff of a against b, line by line, with hunks of
// diffContext lines of context; "" when they are equal.
//
// It is written here rather than imported because the output must be
// stable across versions (tests and scripts compare it) and manifests
// are small enough that a plain LCS is fast.
func LineDiff(nameA, nameB, a, b string) string {
	if a == b {
		return ""
	}
	la, lb := splitLines(a), splitLines(b)
	ops := diffOps(la, lb)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", nameA, nameB)
	for start := 0; start < len(ops); {
		// Find the next change.
		for start < len(ops) && ops[start].kind == ' ' {
			start++
		}
		if start == len(ops) {
			break
		}
		lo := max(start-diffContext, 0)
		hi := start
		// Extend the hunk while changes are close together.
		for i := start; i < len(ops); i++ {
			if ops[i].kind != ' ' {
				hi = i + 1
			} else if i-hi >= 2*diffContext {
				break
			}
		}
		hi = min(hi+diffContext, len(ops))
		aStart, bStart := 1, 1
		for _, op := range ops[:lo] {
			if op.kind != '+' {
				aStart++
			}
			if op.kind != '-' {
				bStart++
			}
		}
		aLen, bLen := 0, 0
		for _, op := range ops[lo:hi] {
			if op.kind != '+' {
				aLen++
			}
			if op.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&sb, "@@ -%d,%d +%d,%d @@\n", aStart, aLen, bStart, bLen)
		for _, op := range ops[lo:hi] {
			sb.WriteByte(op.kind)
			sb.WriteString(op.line)
			sb.WriteByte('\n')
		}
		start = hi
	}
	return sb.String()
}

type diffOp struct {
	kind byte // ' ', '-', '+'
	line string
}

// splitLines ignores a final newline: the YAML encoder always writes one,
// so its absence in an input is no difference worth a hunk.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diffOps is the edit script from a longest common subsequence.
func diffOps(a, b []string) []diffOp {
	n, m := len(a), len(b)
	if n*m > maxDiffCells {
		var ops []diffOp
		for _, l := range a {
			ops = append(ops, diffOp{'-', l})
		}
		for _, l := range b {
			ops = append(ops, diffOp{'+', l})
		}
		return ops
	}
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []diffOp
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			ops = append(ops, diffOp{' ', a[i]})
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			ops = append(ops, diffOp{'-', a[i]})
			i++
		default:
			ops = append(ops, diffOp{'+', b[j]})
			j++
		}
	}
	for ; i < n; i++ {
		ops = append(ops, diffOp{'-', a[i]})
	}
	for ; j < m; j++ {
		ops = append(ops, diffOp{'+', b[j]})
	}
	return ops
}
