package spec

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// ParseKind reads a kind as people type it on a command line or in a
// request: image, images, Image, img; container(s), ctr; task(s);
// network(s), net. "" and "all" are the empty kind (every kind). It is
// the one rule the CLI's verbs and the API share, so a word means the same
// kind to `berth get`, `berth wait` and the Manifests service. Anything
// else is errdefs.ErrInvalidArgument.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "", "all":
		return "", nil
	case "image", "images", "img":
		return KindImage, nil
	case "container", "containers", "ctr":
		return KindContainer, nil
	case "task", "tasks":
		return KindTask, nil
	case "network", "networks", "net":
		return KindNetwork, nil
	}
	return "", fmt.Errorf("kind %q is not one of network(s), image(s), container(s), task(s), all: %w", truncate(s, 40), errdefs.ErrInvalidArgument)
}
