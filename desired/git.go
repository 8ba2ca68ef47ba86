package desired

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// setDigest is a digest of the names and contents of the files in force.
func setDigest(files map[string]*fileState) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%s\n", filepath.Base(n), files[n].digest)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

var commitRE = regexp.MustCompile(`(?:^|[-_.@])([0-9a-f]{40}|[0-9a-f]{64})$`)

// gitCommit finds the commit of a directory without running git: the
// name of a git-sync style target (rev-<sha>, or <sha>), or HEAD of the
// git checkout the directory is in (a .git directory or a .git file
// naming one, as worktrees and submodules have).
func gitCommit(resolved string) string {
	if m := commitRE.FindStringSubmatch(filepath.Base(resolved)); m != nil {
		return m[1]
	}
	dir := resolved
	for range 16 {
		if c := headOf(filepath.Join(dir, ".git")); c != "" {
			return c
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ""
}

const maxGitFile = 64 << 10

func readSmall(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, maxGitFile)
	n, _ := f.Read(b)
	return strings.TrimSpace(string(b[:n]))
}

func headOf(gitPath string) string {
	fi, err := os.Stat(gitPath)
	if err != nil {
		return ""
	}
	gitDir := gitPath
	if !fi.IsDir() {
		s := readSmall(gitPath)
		rel, ok := strings.CutPrefix(s, "gitdir: ")
		if !ok {
			return ""
		}
		if !filepath.IsAbs(rel) {
			rel = filepath.Join(filepath.Dir(gitPath), rel)
		}
		gitDir = rel
	}
	head := readSmall(filepath.Join(gitDir, "HEAD"))
	ref, ok := strings.CutPrefix(head, "ref: ")
	if !ok {
		return hexOrEmpty(head) // detached HEAD
	}
	common := gitDir
	if c := readSmall(filepath.Join(gitDir, "commondir")); c != "" {
		if !filepath.IsAbs(c) {
			c = filepath.Join(gitDir, c)
		}
		common = c
	}
	ref = filepath.Clean(ref)
	if !strings.HasPrefix(ref, "refs/") {
		return ""
	}
	for _, d := range []string{gitDir, common} {
		if c := hexOrEmpty(readSmall(filepath.Join(d, ref))); c != "" {
			return c
		}
	}
	return packedRef(filepath.Join(common, "packed-refs"), ref)
}

func packedRef(path, ref string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) > 16<<20 {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		sha, name, ok := strings.Cut(sc.Text(), " ")
		if ok && name == ref {
			return hexOrEmpty(sha)
		}
	}
	return ""
}

var hexRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

func hexOrEmpty(s string) string {
	if hexRE.MatchString(s) {
		return s
	}
	return ""
}

// GitCommit is the git commit of dir (a checkout, or a git-sync style
// path naming one), or "" when it has none: what a rollout of a directory
// records beside its hash.
func GitCommit(dir string) string {
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	return gitCommit(dir)
}
