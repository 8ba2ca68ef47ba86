package local

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth.dev/berth/content"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// recover runs at open, when no Writer can be active: it removes temp files
// and ingests whose header never completed, and makes metadata agree with
// the blob files (which are the truth).
func (s *Store) recover() error {
	blobDir := filepath.Join(s.root, "blobs", "sha256")
	entries, err := os.ReadDir(blobDir)
	if err != nil {
		return err
	}
	files := map[digest.Digest]os.FileInfo{}
	for _, e := range entries {
		p := filepath.Join(blobDir, e.Name())
		d, err := content.ParseDigest("sha256:" + e.Name())
		if err != nil || !e.Type().IsRegular() {
			slog.Warn("content: removing stray file from blobs", "path", p)
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		files[d] = fi
	}

	ingestDir := filepath.Join(s.root, "ingest")
	ingests, err := os.ReadDir(ingestDir)
	if err != nil {
		return err
	}
	for _, e := range ingests {
		p := filepath.Join(ingestDir, e.Name())
		if !e.IsDir() {
			os.RemoveAll(p)
			continue
		}
		if _, err := os.Stat(filepath.Join(p, "ref")); err != nil {
			slog.Warn("content: removing ingest with no header", "path", p)
			os.RemoveAll(p)
			continue
		}
		inner, _ := os.ReadDir(p)
		for _, f := range inner {
			if strings.HasPrefix(f.Name(), tmpPrefix) {
				os.Remove(filepath.Join(p, f.Name()))
			}
		}
	}

	return s.db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		blobs, err := v1.CreateBucketIfNotExists(bucketBlobs)
		if err != nil {
			return err
		}
		var stale [][]byte
		if err := blobs.ForEach(func(k, _ []byte) error {
			if _, ok := files[digest.Digest(k)]; !ok {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range stale {
			if err := blobs.DeleteBucket(k); err != nil {
				return err
			}
		}
		for d, fi := range files {
			if b := blobs.Bucket([]byte(d)); b != nil {
				if info, err := readInfo(b, d); err == nil && info.Size == fi.Size() {
					continue
				}
			}
			t := fi.ModTime().UTC()
			if t.IsZero() {
				t = time.Now().UTC()
			}
			if err := writeInfo(tx, content.Info{Digest: d, Size: fi.Size(), CreatedAt: t, UpdatedAt: t}); err != nil {
				return err
			}
		}
		if len(stale) > 0 {
			slog.Info("content: dropped metadata of missing blobs", "count", len(stale))
		}
		return nil
	})
}
