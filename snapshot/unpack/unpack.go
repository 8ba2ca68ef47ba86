package unpack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"

	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/layer"
)

// LabelUnpacking marks an active snapshot as an unpack in progress; its
// value is the RFC 3339 time the unpack started.
const LabelUnpacking = "berth.dev/unpack.in-progress"

// KeyPrefix starts the keys of unpack snapshots.
const KeyPrefix = "extract-"

// Layer is one layer to unpack.
type Layer struct {
	Desc   ocispec.Descriptor // the compressed blob (for messages; compression is detected)
	DiffID digest.Digest      // sha256 of the uncompressed tar, from the image config
	// Open returns the (compressed) blob; it may block until it is there.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// Options configure Unpack.
type Options struct {
	// Labels are set on each committed layer snapshot.
	Labels map[string]string
	// Limits bound each layer (see layer.Limits).
	Limits layer.Limits
	// MaxImageSize bounds the uncompressed bytes of the layers this call
	// applies together (layers already unpacked count nothing): each
	// layer's MaxSize is cut to what is left of it. 0: no image cap.
	MaxImageSize int64
	// AllowDevices creates the device nodes layers hold (see
	// layer.Options.AllowDevices).
	AllowDevices bool
	// FreeSpace is the reserve left free on the snapshot filesystem.
	FreeSpace layer.FreeSpace
	// OnApplied, when set, is told what each layer applied by this call
	// measured (devices skipped, xattrs dropped), so the caller can say so.
	OnApplied func(Layer, layer.ApplyResult)
}

// flights makes concurrent unpacks of one layer onto one snapshotter do the
// work once: the others wait for it.
var flights singleflight.Group

// Unpack makes sure the committed snapshot of every chain of layers exists,
// and returns the chain ID of the whole image (the parent for a container's
// snapshot).
func Unpack(ctx context.Context, sn snapshot.Snapshotter, layers []Layer, opts Options) (string, error) {
	if len(layers) == 0 {
		return "", fmt.Errorf("unpack: no layers: %w", errdefs.ErrInvalidArgument)
	}
	diffIDs := make([]digest.Digest, len(layers))
	for i, l := range layers {
		if err := l.DiffID.Validate(); err != nil || l.DiffID.Algorithm() != digest.SHA256 {
			return "", fmt.Errorf("unpack: layer %d: bad diffID %q: %w", i, l.DiffID, errdefs.ErrInvalidArgument)
		}
		diffIDs[i] = l.DiffID
	}
	chains := identity.ChainIDs(diffIDs)
	parent := ""
	var used int64
	for i, l := range layers {
		chain := chains[i].String()
		lopts := opts
		if opts.MaxImageSize > 0 {
			left := opts.MaxImageSize - used
			if left <= 0 {
				return "", fmt.Errorf("unpack layer %d (%s): image larger than the image size cap of %d bytes: %w", i, l.Desc.Digest, opts.MaxImageSize, errdefs.ErrResourceExhausted)
			}
			if lopts.Limits.MaxSize <= 0 || lopts.Limits.MaxSize > left {
				lopts.Limits.MaxSize = left
			}
		}
		res, err := unpackOne(ctx, sn, l, chain, parent, lopts)
		if err != nil {
			return "", fmt.Errorf("unpack layer %d (%s): %w", i, l.Desc.Digest, err)
		}
		used += res.Size
		if opts.OnApplied != nil && res.DiffID != "" {
			opts.OnApplied(l, res)
		}
		parent = chain
	}
	return parent, nil
}

func exists(ctx context.Context, sn snapshot.Snapshotter, chain string) (bool, error) {
	_, err := sn.Stat(ctx, chain)
	if err == nil {
		return true, nil
	}
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return false, err
}

// unpackOne returns what applying the layer measured, or a zero result
// when it was already there (or another caller applied it).
func unpackOne(ctx context.Context, sn snapshot.Snapshotter, l Layer, chain, parent string, opts Options) (layer.ApplyResult, error) {
	if ok, err := exists(ctx, sn, chain); ok || err != nil {
		return layer.ApplyResult{}, err
	}
	key := fmt.Sprintf("%p/%s", sn, chain)
	for {
		v, err, shared := flights.Do(key, func() (any, error) {
			// Re-check: another unpack may have finished it just now.
			if ok, err := exists(ctx, sn, chain); ok || err != nil {
				return layer.ApplyResult{}, err
			}
			return apply(ctx, sn, l, chain, parent, opts)
		})
		// The flight may have been another caller's that was cancelled:
		// then try again with our own context.
		if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && ctx.Err() == nil {
			continue
		}
		res, _ := v.(layer.ApplyResult)
		if shared {
			// Reported (and counted) once, by the caller whose flight it was.
			res = layer.ApplyResult{}
		}
		return res, err
	}
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func apply(ctx context.Context, sn snapshot.Snapshotter, l Layer, chain, parent string, opts Options) (_ layer.ApplyResult, retErr error) {
	key := KeyPrefix + randomHex() + "-" + chain
	mounts, err := sn.Prepare(ctx, key, parent,
		snapshot.WithLabels(map[string]string{LabelUnpacking: time.Now().UTC().Format(time.RFC3339)}))
	if err != nil {
		return layer.ApplyResult{}, err
	}
	defer func() {
		if retErr != nil {
			if err := sn.Remove(context.WithoutCancel(ctx), key); err != nil {
				slog.Warn("unpack: remove failed extract snapshot", "key", key, "error", err)
			}
		}
	}()
	rc, err := l.Open(ctx)
	if err != nil {
		return layer.ApplyResult{}, fmt.Errorf("open layer: %w", err)
	}
	defer rc.Close()
	res, err := ApplyMounts(ctx, mounts, rc, layer.Options{
		ExpectedDiffID: l.DiffID, Limits: opts.Limits,
		AllowDevices: opts.AllowDevices, FreeSpace: opts.FreeSpace,
	})
	if err != nil {
		return layer.ApplyResult{}, err
	}
	err = sn.Commit(ctx, chain, key, func(i *snapshot.Info) error {
		delete(i.Labels, LabelUnpacking)
		return snapshot.WithLabels(opts.Labels)(i)
	})
	if errdefs.IsAlreadyExists(err) {
		// Another unpacker (another process) committed it first.
		if err := sn.Remove(ctx, key); err != nil {
			slog.Warn("unpack: remove extract snapshot", "key", key, "error", err)
		}
		return layer.ApplyResult{}, nil
	}
	return res, err
}

// ApplyMounts applies r onto the tree that mounts describe: straight into
// an overlay's upperdir (with overlay whiteouts) or a bind mount's source,
// else through a temporary mount.
func ApplyMounts(ctx context.Context, mounts []snapshot.Mount, r io.Reader, opts layer.Options) (layer.ApplyResult, error) {
	if len(mounts) == 1 {
		m := mounts[0]
		switch m.Type {
		case "overlay":
			var upper string
			var lowers []string
			for _, o := range m.Options {
				k, v, _ := strings.Cut(o, "=")
				switch k {
				case "upperdir":
					upper = v
				case "lowerdir":
					lowers = strings.Split(v, ":")
				}
			}
			if upper != "" {
				opts.OverlayWhiteouts = true
				opts.Parents = lowers
				return layer.Apply(ctx, upper, r, opts)
			}
		case "bind":
			return layer.Apply(ctx, m.Source, r, opts)
		}
	}
	dir, err := os.MkdirTemp("", "berth-unpack-")
	if err != nil {
		return layer.ApplyResult{}, err
	}
	defer os.Remove(dir)
	if err := snapshot.MountAll(mounts, dir); err != nil {
		return layer.ApplyResult{}, err
	}
	res, err := layer.Apply(ctx, dir, r, opts)
	if uerr := snapshot.UnmountAll(dir); uerr != nil && err == nil {
		err = uerr
	}
	return res, err
}

// CleanupStale removes the extract snapshots an interrupted unpack left.
// Call it at startup, before any unpack runs.
func CleanupStale(ctx context.Context, sn snapshot.Snapshotter) error {
	var stale []string
	err := sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
		if _, ok := info.Labels[LabelUnpacking]; ok && info.Kind == snapshot.KindActive && strings.HasPrefix(info.Name, KeyPrefix) {
			stale = append(stale, info.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cleanup stale unpacks: %w", err)
	}
	var errs []error
	for _, k := range stale {
		slog.Info("unpack: removing stale extract snapshot", "key", k)
		if err := sn.Remove(ctx, k); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
