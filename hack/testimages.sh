#!/usr/bin/env bash
# Builds the shared OCI test image layouts once into DIR (cached between runs).
set -euo pipefail
dir=${1:?usage: testimages.sh DIR}
script=$(cd "$(dirname "$0")/.." && pwd)/../shared/testimages/build.sh
if [ -f "$dir/images.txt" ] && [ -d "$dir/busybox" ]; then exit 0; fi
if [ ! -x "$script" ] && [ ! -f "$script" ]; then
  echo "testimages: $script not found; end-to-end tests that need images will skip" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "testimages: not root; end-to-end tests that need images will skip" >&2
  exit 0
fi
mkdir -p "$dir"
bash "$script" "$dir"
