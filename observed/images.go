package observed

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Image is an image record: a name bound to a target descriptor (a manifest
// or an index) whose blobs are in the content store.
type Image struct {
	Name   string             `json:"name"`
	Target ocispec.Descriptor `json:"target"`
	Labels map[string]string  `json:"labels,omitempty"`
	// Unpacked maps a snapshotter name to the chain ID the image is unpacked to.
	Unpacked map[string]string `json:"unpacked,omitempty"`
	Size     int64             `json:"size,omitempty"`
	// SkippedDevices and DroppedXattrs are what the last unpack that
	// applied layers left out of them (device nodes, xattrs).
	SkippedDevices int       `json:"skippedDevices,omitempty"`
	DroppedXattrs  int       `json:"droppedXattrs,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// GetImage returns the named image of a namespace, or ErrNotFound.
func (d *DB) GetImage(ctx context.Context, ns, name string) (Image, error) {
	var img Image
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, false, bucketImages)
		if err != nil {
			return err
		}
		ok, err := getJSON(b, name, &img)
		if err == nil && !ok {
			err = fmt.Errorf("image %q in namespace %q: %w", name, ns, errdefs.ErrNotFound)
		}
		return err
	})
	return img, err
}

// ListImages lists a namespace's images in name order.
func (d *DB) ListImages(ctx context.Context, ns string) ([]Image, error) {
	var out []Image
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, false, bucketImages)
		if err != nil || b == nil {
			return err
		}
		return b.ForEach(func(k, _ []byte) error {
			var img Image
			if _, err := getJSON(b, string(k), &img); err != nil {
				return err
			}
			out = append(out, img)
			return nil
		})
	})
	return out, err
}

// AllImages lists the images of every namespace, keyed by namespace; the
// garbage collector's roots.
func (d *DB) AllImages(ctx context.Context) (map[string][]Image, error) {
	nss, err := d.ListNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]Image{}
	for _, n := range nss {
		imgs, err := d.ListImages(ctx, n.Name)
		if err != nil {
			return nil, err
		}
		out[n.Name] = imgs
	}
	return out, nil
}

// PutImage creates or replaces an image record, keeping its creation time.
// It reports whether the record was created (rather than updated).
func (d *DB) PutImage(ctx context.Context, ns string, img Image) (Image, bool, error) {
	if img.Name == "" {
		return Image{}, false, fmt.Errorf("image name is empty: %w", errdefs.ErrInvalidArgument)
	}
	var created bool
	err := d.update(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, true, bucketImages)
		if err != nil {
			return err
		}
		var old Image
		exists, err := getJSON(b, img.Name, &old)
		if err != nil {
			return err
		}
		t := now()
		img.CreatedAt, img.UpdatedAt = t, t
		if exists {
			img.CreatedAt = old.CreatedAt
			if img.Unpacked == nil && old.Target.Digest == img.Target.Digest {
				img.Unpacked = old.Unpacked
			}
		}
		created = !exists
		return putJSON(b, img.Name, img)
	})
	return img, created, err
}

// SetImageUnpacked records that an image is unpacked on a snapshotter.
func (d *DB) SetImageUnpacked(ctx context.Context, ns, name, snapshotter, chainID string) error {
	return d.updateImage(ns, name, func(img *Image) {
		if img.Unpacked == nil {
			img.Unpacked = map[string]string{}
		}
		img.Unpacked[snapshotter] = chainID
	})
}

// SetImageLeftOut records what an unpack left out of the image's layers.
func (d *DB) SetImageLeftOut(ctx context.Context, ns, name string, devices, xattrs int) error {
	return d.updateImage(ns, name, func(img *Image) {
		img.SkippedDevices, img.DroppedXattrs = devices, xattrs
	})
}

// updateImage changes the record of an image that exists in one
// transaction, and stamps it updated.
func (d *DB) updateImage(ns, name string, change func(*Image)) error {
	return d.update(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, true, bucketImages)
		if err != nil {
			return err
		}
		var img Image
		ok, err := getJSON(b, name, &img)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("image %q in namespace %q: %w", name, ns, errdefs.ErrNotFound)
		}
		change(&img)
		img.UpdatedAt = now()
		return putJSON(b, name, img)
	})
}

// DeleteImage removes an image record; ErrNotFound if absent.
func (d *DB) DeleteImage(ctx context.Context, ns, name string) error {
	return d.update(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, false, bucketImages)
		if err != nil {
			return err
		}
		if b == nil || b.Get([]byte(name)) == nil {
			return fmt.Errorf("image %q in namespace %q: %w", name, ns, errdefs.ErrNotFound)
		}
		return b.Delete([]byte(name))
	})
}
