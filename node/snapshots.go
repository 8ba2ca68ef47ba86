package node

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// Snapshot keys are global inside a snapshotter. Committed image layers are
// named by chain ID ("sha256:…") and shared by every namespace; every other
// key (a container's rw layer, a user's prepare) is stored as
// "<namespace>/<key>" so namespaces cannot see or touch each other's.

// SnapshotKey maps a key as a user of namespace ns names it to the key the
// snapshotter stores.
func SnapshotKey(ns, key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("snapshot key is empty: %w", errdefs.ErrInvalidArgument)
	}
	if isChainID(key) {
		return key, nil
	}
	if strings.Contains(key, "/") && !strings.HasPrefix(key, ns+"/") {
		return "", fmt.Errorf("snapshot key %q: '/' is reserved: %w", key, errdefs.ErrInvalidArgument)
	}
	return ns + "/" + strings.TrimPrefix(key, ns+"/"), nil
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
