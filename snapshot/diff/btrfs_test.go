package diff

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/snapshot/btrfs"
)

// TestRoundTripBtrfs runs the round trip on btrfs subvolumes of one
// loopback filesystem (the walk: btrfs mounts are binds).
func TestRoundTripBtrfs(t *testing.T) {
	mnt := testutil.Btrfs(t, testutil.BtrfsOptions{})
	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sn, err := btrfs.New(filepath.Join(mnt, fmt.Sprint(i)))
			sn2 := opened(t, sn, err)
			roundTrip(t, ctx, sn2, tc.change, Options{Compression: Zstd}, false)
		})
	}
}
