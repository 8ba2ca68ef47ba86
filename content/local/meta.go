package local

import (
	"encoding/binary"
	"fmt"
	"time"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketV1     = []byte("v1")
	bucketBlobs  = []byte("blobs")
	bucketLabels = []byte("labels")
	keySize      = []byte("size")
	keyCreatedAt = []byte("createdat")
	keyUpdatedAt = []byte("updatedat")
)

func blobsBucket(tx *bolt.Tx) *bolt.Bucket {
	v1 := tx.Bucket(bucketV1)
	if v1 == nil {
		return nil
	}
	return v1.Bucket(bucketBlobs)
}

func readInfo(b *bolt.Bucket, dgst digest.Digest) (content.Info, error) {
	info := content.Info{Digest: dgst}
	if v := b.Get(keySize); len(v) == 8 {
		info.Size = int64(binary.BigEndian.Uint64(v))
	}
	if v := b.Get(keyCreatedAt); v != nil {
		if err := info.CreatedAt.UnmarshalBinary(v); err != nil {
			return info, fmt.Errorf("blob %s: createdat: %w", dgst, err)
		}
	}
	if v := b.Get(keyUpdatedAt); v != nil {
		if err := info.UpdatedAt.UnmarshalBinary(v); err != nil {
			return info, fmt.Errorf("blob %s: updatedat: %w", dgst, err)
		}
	}
	if lb := b.Bucket(bucketLabels); lb != nil {
		info.Labels = map[string]string{}
		if err := lb.ForEach(func(k, v []byte) error {
			info.Labels[string(k)] = string(v)
			return nil
		}); err != nil {
			return info, err
		}
	}
	return info, nil
}

// writeInfo replaces the record of info.Digest.
func writeInfo(tx *bolt.Tx, info content.Info) error {
	v1, err := tx.CreateBucketIfNotExists(bucketV1)
	if err != nil {
		return err
	}
	blobs, err := v1.CreateBucketIfNotExists(bucketBlobs)
	if err != nil {
		return err
	}
	key := []byte(info.Digest)
	if blobs.Bucket(key) != nil {
		if err := blobs.DeleteBucket(key); err != nil {
			return err
		}
	}
	b, err := blobs.CreateBucket(key)
	if err != nil {
		return err
	}
	size := make([]byte, 8)
	binary.BigEndian.PutUint64(size, uint64(info.Size))
	if err := b.Put(keySize, size); err != nil {
		return err
	}
	for k, t := range map[string]time.Time{string(keyCreatedAt): info.CreatedAt, string(keyUpdatedAt): info.UpdatedAt} {
		v, err := t.MarshalBinary()
		if err != nil {
			return err
		}
		if err := b.Put([]byte(k), v); err != nil {
			return err
		}
	}
	if len(info.Labels) == 0 {
		return nil
	}
	lb, err := b.CreateBucket(bucketLabels)
	if err != nil {
		return err
	}
	for k, v := range info.Labels {
		if err := lb.Put([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

// maxLabelBytes bounds one label's key plus value, as containerd does.
const maxLabelBytes = 4096

func validateLabels(labels map[string]string) error {
	for k, v := range labels {
		if k == "" {
			return fmt.Errorf("label with an empty key: %w", errdefs.ErrInvalidArgument)
		}
		if len(k)+len(v) > maxLabelBytes {
			return fmt.Errorf("label %.40q: key and value exceed %d bytes: %w", k, maxLabelBytes, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
