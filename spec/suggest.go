package spec

import (
	"sort"
	"strings"
)

// unknownField is the detail of an unknown key k among the known field
// names: with the closest one as a suggestion when it is near enough to
// be a typo or a case slip. Only a known name is echoed, never k.
func unknownField(k string, known []string) string {
	if s := closest(k, known); s != "" {
		return "unknown field; did you mean " + s + "?"
	}
	return "unknown field"
}

// closest returns the name in known nearest to k by edit distance
// (ignoring case), or "" if none is within a third of k's length.
func closest(k string, known []string) string {
	if len(k) > 64 {
		return "" // not a typo; and bound the quadratic distance
	}
	best, bestD := "", len(k)/3+1
	names := append([]string(nil), known...)
	sort.Strings(names) // ties go the same way every time
	for _, n := range names {
		if d := editDistance(strings.ToLower(k), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
