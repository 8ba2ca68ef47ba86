package node

import (
	"fmt"
	"strings"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
)

// Snapshot keys are global inside a snapshotter. Committed image layers are
// named by chain ID ("sha256:…"), made only by unpack and shared by every
// namespace; every other key (a container's rw layer, a user's prepare) is
// stored as "<namespace>/<key>" so namespaces cannot see or touch each
// other's.

// SnapshotKey maps a key that namespace ns creates, commits or removes to
// the key the snapshotter stores. Chain IDs are refused: a namespace that
// could commit or remove an image layer could change what every other
// namespace runs.
func SnapshotKey(ns, key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("snapshot key is empty: %w", errdefs.ErrInvalidArgument)
	}
	if isChainID(key) {
		return "", fmt.Errorf("snapshot key %q: keys starting with sha256: are image layers, made and removed by berth only: %w", key, errdefs.ErrInvalidArgument)
	}
	if strings.Contains(key, "/") && !strings.HasPrefix(key, ns+"/") {
		return "", fmt.Errorf("snapshot key %q: '/' is reserved: %w", key, errdefs.ErrInvalidArgument)
	}
	return ns + "/" + strings.TrimPrefix(key, ns+"/"), nil
}

// SnapshotRef maps a key that namespace ns reads or uses as a parent: its
// own keys, or an image layer by its chain ID in the strict digest grammar.
func SnapshotRef(ns, key string) (string, error) {
	if isChainID(key) {
		if _, err := content.ParseDigest(key); err != nil {
			return "", fmt.Errorf("snapshot %q: %w", key, err)
		}
		return key, nil
	}
	return SnapshotKey(ns, key)
}

// UserKey maps a stored key back to what namespace ns calls it; ok is false
// for keys of other namespaces.
func UserKey(ns, stored string) (key string, ok bool) {
	if stored == "" || isChainID(stored) {
		return stored, true
	}
	if rest, found := strings.CutPrefix(stored, ns+"/"); found {
		return rest, true
	}
	return "", false
}

func isChainID(s string) bool { return strings.HasPrefix(s, "sha256:") }
