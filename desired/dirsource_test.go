package desired

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/spec"
)

func taskYAML(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "---\napiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: %s}\nspec: {container: %s}\n", n, n)
	}
	return b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startDir runs a DirSource on dir with a short debounce and a resync
// long enough that only fsnotify can explain a quick reaction.
func startDir(t *testing.T, dir string, opts DirOptions) (*Store, *DirSource) {
	t.Helper()
	if opts.Debounce == 0 {
		opts.Debounce = 20 * time.Millisecond
	}
	if opts.Resync == 0 {
		opts.Resync = time.Hour
	}
	if opts.Settle == 0 {
		// Files written before the source starts have no writer events.
		opts.Settle = 50 * time.Millisecond
	}
	s := NewStore()
	d := NewDirSource(dir, s, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the first read", d.Synced)
	return s, d
}

func names(s *Store) string {
	var n []string
	for _, e := range s.List(Filter{}) {
		n = append(n, e.Key.Name)
	}
	return strings.Join(n, ",")
}

func sourceErr(s *Store, source string) error {
	for _, st := range s.Sources() {
		if st.Name == source {
			return st.Err
		}
	}
	return nil
}

func TestDirSource_Lifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := startDir(t, dir, DirOptions{})
	f := filepath.Join(dir, "web.yaml")

	start := time.Now()
	write(t, f, taskYAML("a", "b"))
	waitFor(t, "objects to appear", func() bool { return names(s) == "a,b" })
	t.Logf("write → objects in force in %v", time.Since(start))

	write(t, f, strings.Replace(taskYAML("a", "b"), "container: a", "container: a2", 1))
	waitFor(t, "the edit", func() bool { e, _ := s.Get(key("a")); return e.Generation == 2 })

	// Invalid, then half written: the last good objects stay, the error names the file.
	for _, bad := range []string{taskYAML("a") + "  memory: [\n", taskYAML("a", "b")[:60]} {
		write(t, f, bad)
		waitFor(t, "the error", func() bool { return sourceErr(s, f) != nil })
		if got := sourceErr(s, f).Error(); !strings.Contains(got, f) {
			t.Errorf("error %q does not name the file", got)
		}
		if got := names(s); got != "a,b" {
			t.Errorf("objects %q while the file is broken, want a,b", got)
		}
		write(t, f, taskYAML("a", "b"))
		waitFor(t, "the fix", func() bool { return sourceErr(s, f) == nil })
	}

	// Atomic rename-over.
	tmp := filepath.Join(dir, ".web.yaml.tmp")
	write(t, tmp, taskYAML("c"))
	if err := os.Rename(tmp, f); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the renamed file", func() bool { return names(s) == "c" })

	// Deleted and recreated.
	os.Remove(f)
	waitFor(t, "the objects to go", func() bool { return names(s) == "" })
	write(t, f, taskYAML("d"))
	waitFor(t, "the recreated file", func() bool { return names(s) == "d" })
}

func TestDirSource_Droppings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, n := range []string{".web.yaml.swp", "web.yaml~", "#web.yaml#", "4913", "web.yaml.bak", ".hidden.yaml", "web.txt", "web.yaml.swp"} {
		write(t, filepath.Join(dir, n), taskYAML("dropping"))
	}
	os.Symlink("user@host.1234:1700000000", filepath.Join(dir, ".#web.yaml")) // emacs lock, dangling
	os.Symlink("nowhere.yaml", filepath.Join(dir, "dangling.yaml"))
	os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755)
	write(t, filepath.Join(dir, "real.yaml"), taskYAML("real"))
	s, _ := startDir(t, dir, DirOptions{})
	if got := names(s); got != "real" {
		t.Errorf("objects %q, want only real", got)
	}
}

func TestDirSource_SymlinkOutside(t *testing.T) {
	t.Parallel()
	outside := filepath.Join(t.TempDir(), "secret.yaml")
	write(t, outside, "SECRET-CONTENT: do-not-echo\n")
	dir := t.TempDir()
	for n, target := range map[string]string{"shadow.yaml": "/etc/shadow", "secret.yaml": outside, "up.yaml": "../" + filepath.Base(filepath.Dir(outside)) + "/secret.yaml"} {
		if err := os.Symlink(target, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, "inside.yaml"), taskYAML("inside"))
	os.Symlink("inside.yaml", filepath.Join(dir, "alias.yml")) // stays inside: read
	s, _ := startDir(t, dir, DirOptions{})
	for _, n := range []string{"shadow.yaml", "secret.yaml", "up.yaml"} {
		err := sourceErr(s, filepath.Join(dir, n))
		if err == nil {
			t.Errorf("%s: no error reported", n)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "root:") {
			t.Errorf("%s: error echoes the target's content: %v", n, err)
		}
		t.Logf("%s: %v", n, err)
	}
	if got := len(s.Conflicts()); got != 1 { // inside.yaml and alias.yml both declare "inside"
		t.Errorf("%d conflicts, want 1 (the in-directory symlink is read)", got)
	}
}

func TestDirSource_Duplicate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), taskYAML("web"))
	write(t, filepath.Join(dir, "b.yaml"), strings.Replace(taskYAML("web"), "container: web", "container: other", 1))
	s, d := startDir(t, dir, DirOptions{Resync: 10 * time.Millisecond})
	first, _ := s.Get(key("web"))
	// Many relists, and touches of both files: the owner never changes.
	for i := range 20 {
		f := filepath.Join(dir, []string{"a.yaml", "b.yaml"}[i%2])
		data, _ := os.ReadFile(f)
		// Taken before the change: a renamed-in file is read within
		// milliseconds, possibly before this goroutine runs again.
		rev := d.Revision().Hash
		// Rename over: an in-place rewrite of a file may be read empty when
		// the machine is slow, which is a different hazard.
		write(t, f+".tmp", string(data)+"\n")
		if err := os.Rename(f+".tmp", f); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a relist", func() bool { return d.Revision().Hash != rev })
		e, _ := s.Get(key("web"))
		if e.Source != first.Source || e.Generation != first.Generation {
			t.Fatalf("flapped: %+v, was %+v", e, first)
		}
		if cs := s.ConflictsFor(key("web")); len(cs) != 1 {
			t.Fatalf("conflicts %v", cs)
		}
	}
}

func TestDirSource_SymlinkSwap(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	shaA, shaB := strings.Repeat("a", 40), strings.Repeat("b", 40)
	for sha, objs := range map[string][]string{shaA: {"one", "two"}, shaB: {"two", "three"}} {
		os.Mkdir(filepath.Join(parent, "rev-"+sha), 0o755)
		write(t, filepath.Join(parent, "rev-"+sha, "app.yaml"), taskYAML(objs...))
	}
	current := filepath.Join(parent, "current")
	os.Symlink("rev-"+shaA, current)
	s, d := startDir(t, current, DirOptions{})
	if got := names(s); got != "one,two" {
		t.Fatalf("objects %q", got)
	}
	if got := d.Revision().Commit; got != shaA {
		t.Errorf("commit %q, want %q", got, shaA)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := s.Subscribe(ctx)
	seen := make(chan string, 100)
	go func() {
		for range keys {
			seen <- names(s)
		}
	}()
	// git-sync: a new symlink renamed over the old one.
	os.Symlink("rev-"+shaB, filepath.Join(parent, "tmp-link"))
	if err := os.Rename(filepath.Join(parent, "tmp-link"), current); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new set", func() bool { return names(s) == "three,two" })
	if got := d.Revision().Commit; got != shaB {
		t.Errorf("commit %q, want %q", got, shaB)
	}
	os.RemoveAll(filepath.Join(parent, "rev-"+shaA)) // git-sync removes the old worktree
	waitFor(t, "notifications", func() bool { return len(seen) >= 2 })
	for len(seen) > 0 {
		if got := <-seen; got != "one,two" && got != "three,two" {
			t.Errorf("intermediate state %q seen during the swap", got)
		}
	}
	if e, _ := s.Get(key("two")); e.Generation != 1 {
		t.Errorf("an object in both revisions was recreated: %+v", e)
	}
}

func TestDirSource_Large(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var many []string
	for i := range spec.MaxDocuments {
		many = append(many, fmt.Sprintf("t%d", i))
	}
	s, _ := startDir(t, dir, DirOptions{})
	start := time.Now()
	write(t, filepath.Join(dir, "many.yaml"), taskYAML(many...))
	waitFor(t, "10k objects", func() bool { return len(s.List(Filter{})) == spec.MaxDocuments })
	t.Logf("10000-document file in force in %v", time.Since(start))

	bomb := "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	for i := range 9 {
		bomb += fmt.Sprintf("l%d: &l%d [%s*%s]\n", i, i, strings.Repeat(fmt.Sprintf("*%s, ", prevAnchor(i)), 8), prevAnchor(i))
	}
	f := filepath.Join(dir, "bomb.yaml")
	start = time.Now()
	write(t, f, bomb)
	waitFor(t, "the bomb's error", func() bool { return sourceErr(s, f) != nil })
	t.Logf("YAML bomb refused in %v: %v", time.Since(start), sourceErr(s, f))

	big := filepath.Join(dir, "big.yaml")
	write(t, big, "# "+strings.Repeat("x", spec.MaxFileSize)+"\n")
	waitFor(t, "the size error", func() bool { return sourceErr(s, big) != nil })
	if got := sourceErr(s, big).Error(); !strings.Contains(got, "more than the limit") {
		t.Errorf("error %q", got)
	}
}

func prevAnchor(i int) string {
	if i == 0 {
		return "a"
	}
	return fmt.Sprintf("l%d", i-1)
}

func TestDirSource_GitCheckout(t *testing.T) {
	t.Parallel()
	repo := t.TempDir()
	sha := strings.Repeat("c", 40)
	os.MkdirAll(filepath.Join(repo, ".git", "refs", "heads"), 0o755)
	write(t, filepath.Join(repo, ".git", "HEAD"), "ref: refs/heads/main\n")
	write(t, filepath.Join(repo, ".git", "refs", "heads", "main"), sha+"\n")
	dir := filepath.Join(repo, "manifests")
	os.Mkdir(dir, 0o755)
	write(t, filepath.Join(dir, "a.yaml"), taskYAML("a"))
	_, d := startDir(t, dir, DirOptions{})
	if got := d.Revision(); got.Commit != sha || !strings.HasPrefix(got.Hash, "sha256:") {
		t.Errorf("revision %+v, want commit %s", got, sha)
	}
	// A packed ref in a worktree-style .git file.
	wt := t.TempDir()
	write(t, filepath.Join(wt, ".git"), "gitdir: "+filepath.Join(repo, ".git")+"\n")
	os.Remove(filepath.Join(repo, ".git", "refs", "heads", "main"))
	write(t, filepath.Join(repo, ".git", "packed-refs"), "# pack-refs\n"+sha+" refs/heads/main\n")
	if got := gitCommit(wt); got != sha {
		t.Errorf("gitCommit via .git file and packed-refs = %q", got)
	}
}

// An editor or scp writing in place: a valid prefix ("memory: 1" of
// "memory: 1024Mi") must never be applied.
func TestDirSource_SlowInPlaceWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := startDir(t, dir, DirOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := s.Subscribe(ctx)
	full := "apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: img}\nspec: {ref: 'busybox:1'}\n---\n" +
		"apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: img\n  resources:\n    memory: 1024Mi\n"
	cut := strings.Index(full, "1024Mi") + 1 // ends in "memory: 1": valid on its own
	if _, err := spec.Load("x.yaml", []byte(full[:cut])); err != nil {
		t.Fatalf("the prefix should be valid on its own: %v", err)
	}
	f, err := os.Create(filepath.Join(dir, "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(full[:cut])
	// Keep writing, a byte every few milliseconds, as a slow copy does.
	for _, c := range []byte(full[cut:]) {
		time.Sleep(5 * time.Millisecond)
		f.Write([]byte{c})
	}
	f.Close()
	ck := spec.Key{Namespace: "default", Kind: spec.KindContainer, Name: "web"}
	waitFor(t, "the container", func() bool { _, ok := s.Get(ck); return ok })
	e, _ := s.Get(ck)
	if mem := e.Object.Spec.(spec.ContainerSpec).Resources.Memory; mem != "1024Mi" || e.Generation != 1 {
		t.Errorf("memory %q generation %d: a prefix was applied", mem, e.Generation)
	}
	cancel()
	for range keys {
	}
}

// A file rewritten in place in 16-byte chunks every 200 ms (scp, a slow
// editor save): only the whole new content is ever in force, and it is
// applied once, when the writer closes the file. The settle time is an
// hour, so only the writer's close can explain the read.
func TestDirSource_ChunkedRewriteAppliedWhenClosed(t *testing.T) {
	dir := t.TempDir()
	doc := func(mem string) string {
		return "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: img\n  resources:\n    memory: " + mem + "\n"
	}
	path := filepath.Join(dir, "web.yaml")
	s, _ := startDir(t, dir, DirOptions{Settle: time.Hour, Debounce: 100 * time.Millisecond})
	write(t, path, doc("512Mi"))
	ck := spec.Key{Namespace: "default", Kind: spec.KindContainer, Name: "web"}
	memory := func() (string, int64) {
		e, ok := s.Get(ck)
		if !ok {
			return "", 0
		}
		return string(e.Object.Spec.(spec.ContainerSpec).Resources.Memory), e.Generation
	}
	waitFor(t, "the first version", func() bool { m, _ := memory(); return m == "512Mi" })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := s.Subscribe(ctx)
	seen := make(chan []string, 1)
	go func() {
		var got []string
		for range keys {
			m, _ := memory()
			got = append(got, m)
		}
		seen <- got
	}()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(doc("1024Mi"))
	for len(data) > 0 {
		n := min(16, len(data))
		if _, err := f.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
		time.Sleep(200 * time.Millisecond) // the writer's pace is the test's input
	}
	if m, _ := memory(); m != "512Mi" {
		t.Errorf("memory %q while the writer still has the file open; want the old 512Mi", m)
	}
	f.Close()
	waitFor(t, "the new version", func() bool { m, _ := memory(); return m == "1024Mi" })
	if _, gen := memory(); gen != 2 {
		t.Errorf("generation %d after one rewrite; want 2 (applied once)", gen)
	}
	cancel()
	for _, m := range <-seen {
		if m != "512Mi" && m != "1024Mi" {
			t.Errorf("memory %q was in force: a prefix of the file was applied", m)
		}
	}
}

// An editor's atomic save (write a temp file, rename it over) is whole at
// once: it applies without waiting for the settle time.
func TestDirSource_AtomicRenameAppliesAtOnce(t *testing.T) {
	dir := t.TempDir()
	s, _ := startDir(t, dir, DirOptions{Settle: time.Hour})
	tmp := filepath.Join(dir, ".web.yaml.swp")
	write(t, tmp, taskYAML("web"))
	if err := os.Rename(tmp, filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the renamed file", func() bool { return names(s) == "web" })
}

// TestDirSource_MissingIsEmpty: a default directory nobody created reads
// as empty (the source is synced, with no error), is picked up when it
// appears, and once seen, its removal is an error that keeps its objects.
func TestDirSource_MissingIsEmpty(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "manifests")
	s, _ := startDir(t, dir, DirOptions{MissingIsEmpty: true, Resync: 50 * time.Millisecond})
	if err := sourceErr(s, dir); err != nil {
		t.Errorf("missing default directory: source error %v, want none", err)
	}
	if !s.Synced() {
		t.Error("store not synced with the missing default directory read as empty")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "web.yaml"), taskYAML("a"))
	waitFor(t, "the objects of the directory that appeared", func() bool { return names(s) == "a" })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the error of the vanished directory", func() bool { return sourceErr(s, dir) != nil })
	if got := names(s); got != "a" {
		t.Errorf("objects %q after the directory vanished, want a (kept)", got)
	}
}
