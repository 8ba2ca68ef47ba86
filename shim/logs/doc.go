// Package logs writes and reads a container's output log.
//
// The shim writes every line the container prints to one file, in the
// format kubelet and CRI runtimes use, so tools that read those logs read
// berth's too:
//
//	2026-11-22T05:00:00.000000000Z stdout F hello world
//	<RFC 3339 time, UTC, nanoseconds> <stdout|stderr> <F full line|P partial> <text>
//
// A line longer than MaxLine bytes is cut into P (partial) records and ends
// with an F record, so a reader can join them; so is a line left without
// its newline for FlushAfter (a prompt, `echo -n`), so a follower sees it.
// The log rotates by size:
// when writing a record would make <path> larger than the maximum size it is
// renamed to <path>.1 (and <path>.1 to <path>.2 and so on), keeping at most
// the configured number of files, the oldest dropped. Rotation renames, so
// a follower that holds the old file open finishes it before moving on.
//
// Reader reads the files oldest first, with a tail count and follow, which
// is what `berth logs [-n N] [-f]` needs.
package logs

// MaxLine is the longest text one record carries; longer lines are split.
const MaxLine = 16 * 1024

// Stream names.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)
