package desired

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"berth.dev/berth/spec"
)

// DirOptions tune a DirSource. Zero values take the defaults.
type DirOptions struct {
	// Resync is the period of the full relist that makes a missed event
	// cost latency, not correctness. Default 30s.
	Resync time.Duration
	// Debounce is the quiet time after the last event before the
	// directory is read, and the age a file's mtime must reach before it
	// is read. Default 100ms.
	Debounce time.Duration
	// Settle is how long a file must have been quiet (by its mtime) before
	// it is read when nothing says its writer is done: no close-after-write
	// from inotify, no rename into place. Default 2s.
	Settle time.Duration
	// MaxFileSize refuses larger files. Default spec.MaxFileSize.
	MaxFileSize int64
	// MissingIsEmpty reads a directory that does not exist (and never
	// did since Run started) as empty, so a default path nobody created
	// does not hold the node back from ready. A directory given
	// explicitly leaves it false: missing is then an error, reported on
	// the directory's source, and the source is never read.
	MissingIsEmpty bool
	Logger         *slog.Logger
	// Atomic, when set, takes the whole directory as one set instead of
	// feeding the store file by file: it is called (from Run's goroutine)
	// with every file's objects whenever the set read differs from the
	// last one given, and once at the first read. It owns what reaches
	// the store for the directory (a rollout, see package rollout).
	Atomic func(AtomicSet)
}

// AtomicSet is the whole directory as DirOptions.Atomic receives it.
type AtomicSet struct {
	Dir      string
	Revision Revision
	// Objects are every file's objects, their relative paths resolved.
	Objects []spec.Object
	// Err says a file could not be read or parsed: the set is incomplete
	// and must not be rolled out.
	Err error
	// First is the directory's first read since Run started.
	First bool
}

// DirSource feeds a Store from a watched directory of manifests. Each
// file is its own source (named by its path under the directory as
// given), so a broken file only affects its own objects, which stay in
// force while it fails. Every change — one file or a symlink swap of the
// whole directory — is computed as a whole new set and handed to the
// store in one Update.
type DirSource struct {
	dir   string
	store *Store
	opts  DirOptions
	log   *slog.Logger

	// Owned by the Run goroutine.
	files    map[string]*fileState
	sent     map[string]bool // sources the store knows
	errored  map[string]bool
	resolved string
	// placed are files (base names) whose last event was their arrival —
	// a rename into the directory — with no write since: whole already.
	// Used only without inotify's close-after-write (writes).
	placed map[string]bool
	// writes says which files' writers are done, where inotify can.
	writes *writers
	// sentRevision is the revision last reported to the store.
	sentRevision string
	// firstRead is when the directory was first listed: files still being
	// written stop holding back the first sync only a while after that.
	firstRead time.Time
	// existed is set once the directory was listed: a directory that
	// vanishes after that is an error even with MissingIsEmpty (a mount
	// that flickers must not delete all work).
	existed bool

	mu       sync.Mutex
	synced   bool
	revision Revision
}

// String is how the revision is reported: the set's hash, the git commit
// when there is one, and the directory the path resolved to.
func (r Revision) String() string {
	out := r.Hash
	if r.Commit != "" {
		out += " git:" + r.Commit
	}
	if r.Resolved != "" {
		out += " (" + r.Resolved + ")"
	}
	return out
}

// Revision identifies the set of files in force.
type Revision struct {
	// Hash is a digest of the names and contents of the files in force.
	Hash string
	// Commit is the git commit, when the directory is a git checkout or
	// a git-sync style path names one; empty otherwise.
	Commit string
	// Resolved is the directory the path pointed at when last read.
	Resolved string
}

// NewDirSource returns a source for dir. It registers with store, which
// is not Synced until Run has read the directory once.
func NewDirSource(dir string, store *Store, opts DirOptions) *DirSource {
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.Settle <= 0 {
		opts.Settle = 2 * time.Second
	}
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = spec.MaxFileSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	dir = filepath.Clean(dir)
	store.Expect(dir)
	return &DirSource{
		dir: dir, store: store, opts: opts, log: opts.Logger.With("dir", dir),
		files: map[string]*fileState{}, sent: map[string]bool{}, errored: map[string]bool{},
	}
}

// Synced reports whether the directory has been read in full once.
func (d *DirSource) Synced() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.synced
}

// Revision is the revision in force.
func (d *DirSource) Revision() Revision {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.revision
}

// Run watches and reads the directory until ctx is done. It returns
// ctx's error, or an error if no watcher can be created at all.
func (d *DirSource) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	d.writes = newWriters()
	defer d.writes.close()
	var wrote <-chan struct{} // a writer closed its file
	if d.writes != nil {
		wrote = d.writes.wake
	}
	// The parent is watched so a swap of the directory (a symlink renamed
	// over, or the directory replaced) is seen: a watch on the old target
	// sees nothing of it.
	if err := w.Add(filepath.Dir(d.dir)); err != nil {
		d.log.Warn("cannot watch the parent directory; relying on the periodic relist", "err", err)
	}
	start := time.Now()
	resync := time.NewTicker(d.opts.Resync)
	defer resync.Stop()
	debounce := time.NewTimer(0) // read at once
	var firstEvent time.Time     // of the burst being debounced
	var lastWrite time.Time      // a file may still be being written since
	schedule := func(after time.Duration) {
		if firstEvent.IsZero() {
			firstEvent = time.Now()
		}
		// A steady stream of events must not starve the read.
		if time.Since(firstEvent) > 10*d.opts.Debounce {
			after = 0
		}
		debounce.Reset(after)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watcher closed")
			}
			if filepath.Dir(ev.Name) == filepath.Dir(d.dir) && ev.Name != d.dir {
				continue // a sibling of the directory
			}
			delay := d.delayFor(ev)
			d.notePlaced(ev)
			if delay == d.opts.Debounce {
				lastWrite = time.Now()
			} else if quiet := time.Until(lastWrite.Add(d.opts.Debounce)); quiet > delay {
				delay = quiet // never cut short the wait for a file being written
			}
			schedule(delay)
		case <-wrote:
			schedule(min(quickRead, d.opts.Debounce))
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watcher closed")
			}
			// IN_Q_OVERFLOW and friends: events were lost, so relist.
			d.log.Warn("watch error; relisting", "err", err)
			if d.writes != nil {
				d.writes.lost()
			}
			schedule(0)
		case <-resync.C:
			schedule(0)
		case <-debounce.C:
			if d.drainWrites(w) {
				// A write queued while we waited: that file is still being
				// written, so wait out the debounce from now.
				lastWrite = time.Now()
				schedule(d.opts.Debounce)
				continue
			}
			firstEvent = time.Time{}
			d.rewatch(w)
			retry := d.sync(time.Now(), time.Since(start) > 20*d.opts.Debounce)
			if retry {
				schedule(d.opts.Debounce)
			}
		}
	}
}

// notePlaced tracks which files arrived whole (see placed).
func (d *DirSource) notePlaced(ev fsnotify.Event) {
	if d.placed == nil {
		d.placed = map[string]bool{}
	}
	name := filepath.Base(ev.Name)
	switch {
	case ev.Op&fsnotify.Write != 0:
		delete(d.placed, name)
	case ev.Op&fsnotify.Create != 0:
		d.placed[name] = true
	}
}

// drainWrites takes in the events already queued, and reports whether any
// was a write (a read now could see half a file).
func (d *DirSource) drainWrites(w *fsnotify.Watcher) bool {
	wrote := false
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return wrote
			}
			d.notePlaced(ev)
			wrote = wrote || ev.Op&(fsnotify.Write|fsnotify.Chmod) != 0
		default:
			return wrote
		}
	}
}

// quickRead is how soon a file that appeared whole is read.
const quickRead = 5 * time.Millisecond

// delayFor is the quiet time an event asks for. A file renamed into place
// (git-sync, an atomic writer) or removed is complete at once; a write may
// be one of many, so it waits the whole debounce — and a file created and
// then written sends writes that push the read back again.
func (d *DirSource) delayFor(ev fsnotify.Event) time.Duration {
	if ev.Op&(fsnotify.Write|fsnotify.Chmod) != 0 {
		return d.opts.Debounce
	}
	return min(quickRead, d.opts.Debounce)
}

// rewatch moves the watch to where the directory path points now.
func (d *DirSource) rewatch(w *fsnotify.Watcher) {
	resolved, err := filepath.EvalSymlinks(d.dir)
	if err != nil || resolved == d.resolved {
		return
	}
	if err := d.writes.watch(resolved, d.resolved != ""); err != nil {
		d.log.Warn("cannot watch for writers closing files; relying on the settle time", "err", err)
	}
	if d.resolved != "" {
		_ = w.Remove(d.dir) // the old target may be gone already
	}
	if err := w.Add(d.dir); err != nil {
		d.log.Warn("cannot watch the directory; relying on the periodic relist", "err", err)
		return
	}
	d.resolved = resolved
}

// sync reads the directory and hands every change to the store in one
// Update. It reports whether a file was still being written. force marks
// the source synced even then, so a file written forever cannot hold up
// the start of the controllers.
func (d *DirSource) sync(now time.Time, force bool) (retry bool) {
	l, err := d.list(now)
	if err != nil && d.opts.MissingIsEmpty && !d.existed && errors.Is(err, fs.ErrNotExist) {
		l, err = &listing{files: map[string]*fileState{}, errs: map[string]error{}}, nil
	} else if err == nil {
		d.existed = true
	}
	if err != nil {
		// The directory itself is unreadable or gone: keep everything in
		// force (deleting all work because a mount flickered is worse than
		// keeping it) and report it on the directory's own source.
		d.log.Warn("cannot read the manifest directory", "err", err)
		d.store.Update(SourceUpdate{Source: d.dir, Err: err})
		return false
	}
	if d.firstRead.IsZero() {
		d.firstRead = now
	}
	// A directory that appears late (a checkout that lands after boot) must
	// not count as read while its files are still settling.
	force = force && now.Sub(d.firstRead) > 20*d.opts.Debounce
	var updates []SourceUpdate
	rev := Revision{Hash: setDigest(l.files), Commit: gitCommit(l.resolved), Resolved: l.resolved}
	if d.opts.Atomic != nil {
		return d.syncAtomic(l, rev, force)
	}
	if d.errored[d.dir] || !d.sent[d.dir] || rev.String() != d.sentRevision {
		// The directory's own source carries the revision in force, so
		// `berth get sources` says which set (and git commit) runs.
		updates = append(updates, SourceUpdate{Source: d.dir, Revision: rev.String()})
		d.errored[d.dir], d.sent[d.dir], d.sentRevision = false, true, rev.String()
	}
	seen := map[string]bool{d.dir: true}
	for src, st := range l.files {
		seen[src] = true
		if l.errs[src] != nil {
			continue
		}
		prev := d.files[src]
		if prev == nil || prev.digest != st.digest || d.errored[src] || !d.sent[src] {
			if st.good {
				updates = append(updates, SourceUpdate{Source: src, Objects: st.objects, Revision: st.digest})
				d.errored[src], d.sent[src] = false, true
			}
		}
		d.files[src] = st
	}
	for src, err := range l.errs {
		seen[src] = true
		if st := l.files[src]; st != nil {
			d.files[src] = st // remember the content so it is not parsed again
		}
		updates = append(updates, SourceUpdate{Source: src, Err: err})
		d.errored[src], d.sent[src] = true, true
	}
	for src := range d.sent {
		if !seen[src] {
			updates = append(updates, SourceUpdate{Source: src, Remove: true})
			delete(d.sent, src)
			delete(d.errored, src)
			delete(d.files, src)
		}
	}
	for src := range d.files {
		if !seen[src] {
			delete(d.files, src)
		}
	}
	sort.Slice(updates, func(i, j int) bool { return updates[i].Source < updates[j].Source })
	if len(updates) > 0 {
		d.store.Update(updates...)
		d.log.Debug("manifest directory changed", "sources", len(updates))
	}
	d.mu.Lock()
	d.revision = rev
	first := !d.synced && (!l.retry || force)
	if first {
		d.synced = true
	}
	d.mu.Unlock()
	if first {
		d.store.MarkSynced(d.dir)
	}
	return l.retry
}

// syncAtomic hands the whole directory to DirOptions.Atomic when the set
// read differs from the last one handed over.
func (d *DirSource) syncAtomic(l *listing, rev Revision, force bool) (retry bool) {
	var errs []error
	var objs []spec.Object
	names := make([]string, 0, len(l.files))
	for src := range l.files {
		names = append(names, src)
	}
	sort.Strings(names)
	for _, src := range names {
		if err := l.errs[src]; err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range l.files[src].objects {
			objs = append(objs, spec.AbsolutePaths(o))
		}
	}
	for src, err := range l.errs {
		if l.files[src] == nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	key := rev.String()
	if err != nil {
		key += "\x00" + err.Error()
	}
	d.mu.Lock()
	first := !d.synced && (!l.retry || force)
	d.mu.Unlock()
	if !l.retry || force {
		if key != d.sentRevision || first {
			d.opts.Atomic(AtomicSet{Dir: d.dir, Revision: rev, Objects: objs, Err: err, First: first})
			d.sentRevision = key
		}
	}
	d.files = l.files
	d.mu.Lock()
	d.revision = rev
	if first {
		d.synced = true
	}
	d.mu.Unlock()
	if first {
		d.store.MarkSynced(d.dir)
	}
	return l.retry
}
