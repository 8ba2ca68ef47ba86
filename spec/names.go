package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
)

// IsManifestFile reports whether a directory entry name is a manifest berth
// reads: .yaml, .yml or .json, and not a dotfile or an editor's swap,
// backup or lock file. The watched directory and `berth apply -f DIR` use
// the same rule.
func IsManifestFile(name string) bool {
	switch {
	case name == "" || name[0] == '.' || name[0] == '#' || name == "4913":
		return false // dotfiles, emacs .#lock and #autosave#, vim's 4913 probe
	case strings.HasSuffix(name, "~"), strings.HasSuffix(name, ".swp"),
		strings.HasSuffix(name, ".swx"), strings.HasSuffix(name, ".bak"):
		return false
	}
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml" || ext == ".json"
}

// Labels berth puts on what it makes for a declared object.
const (
	// LabelFetchedFor is set on an image record a rollout fetched for an
	// Image object before applying it (Key.String of the object), so the
	// object owns the record as if it had pulled it itself.
	LabelFetchedFor = "berth.dev/fetched-for"
	// LabelOwner names the object ("Container/web").
	LabelOwner = "berth.dev/owner"
	// LabelSpecHash is ContainerInstanceHash of what the container was
	// made from: a change of either part recreates it.
	LabelSpecHash = "berth.dev/spec-hash"
	// LabelNetworkHash is the spec hash of the declared Network a
	// container was attached to: a changed Network recreates it.
	LabelNetworkHash = "berth.dev/network-spec-hash"
)

// ContainerInstanceHash ties a container to its Container spec's Hash and
// the digest its Image resolved to.
func ContainerInstanceHash(specHash, imageDigest string) string {
	h := sha256.Sum256([]byte(specHash + "\x00" + imageDigest))
	return hex.EncodeToString(h[:])
}
