#!/usr/bin/env bash
# Builds the test image layouts into DIR with the project's own builder
# (hack/mkimage). The small images are rebuilt each time (under a second);
# the debian rootfs is debootstrapped once and cached in DIR/.cache.
# Without root the debian image is left out and the tests that need it say so.
set -euo pipefail
dir=${1:?usage: testimages.sh DIR}
cd "$(dirname "$0")/.."
args=(-layouts "$dir")
if [ "$(id -u)" != 0 ]; then
  echo "testimages: not root; building without the debian image (debootstrap needs root)" >&2
  args+=(-skip-debian)
fi
go run ./hack/mkimage "${args[@]}"
