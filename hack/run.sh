#!/usr/bin/env bash
# Brings up a real berthd under DIR (default ./.berth) applying
# examples/manifests/, with the busybox image built from the host's static
# busybox (no network). Ctrl-C stops the agent; containers keep running
# until it is started again or they are deleted.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/.berth}
mkdir -p "$dir"
if [ "$(id -u)" != 0 ]; then echo "run: berthd needs root (runc, mounts, cgroups)" >&2; exit 1; fi
"$top/hack/deps.sh"
if [ ! -f "$top/examples/manifests/images/busybox.tar" ]; then
  (cd "$top" && go run ./hack/mkimage -busybox /bin/busybox -name example.local/busybox:latest \
    -o examples/manifests/images/busybox.tar)
fi
cat <<MSG
berthd is starting under $dir, watching examples/manifests/.
In another terminal:
  export BERTH_ADDRESS=$dir/berth.sock
  bin/berth get all           # objects and their status
  bin/berth logs ticker -f     # a task that exits and restarts
  curl http://127.0.0.1:18080/ # the web task
MSG
exec "$top/bin/berthd" --root "$dir/root" --state "$dir/state" --address "$dir/berth.sock" \
  --manifests "$top/examples/manifests" --metrics-address 127.0.0.1:1338
