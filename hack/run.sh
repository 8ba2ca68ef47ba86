#!/usr/bin/env bash
# Brings up a real berthd under DIR (default ./.berth) applying
# examples/manifests/, with the busybox image built from the host's static
# busybox (no network). Ctrl-C stops the agent; containers keep running
# until it is started again or they are deleted.
#
#   hack/run.sh [DIR]        run the example agent
#   hack/run.sh down [DIR]   tear down what it left running, then stop
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = down ]; then
  dir=${2:-$top/.berth}
  [ -d "$dir/root" ] || exit 0
  # With no manifest source, everything the files declared is torn down.
  "$top/bin/berthd" --root "$dir/root" --state "$dir/state" --address "$dir/berth.sock" \
    --cri-address "$dir/cri.sock" --cni-conf-dir "$dir/cni/net.d" --cni-bridge berth-run0 --cni-subnet 10.85.0.0/16 \
    --manifests "" --metrics-address off --log-level warn &
  pid=$!
  for _ in $(seq 1 600); do
    out=$("$top/bin/berth" --address "$dir/berth.sock" task ls -o json 2>/dev/null || true)
    [ "$out" = "[]" ] && break
    sleep 0.1
  done
  kill -TERM "$pid"; wait "$pid" || true
  echo "torn down; remove $dir to forget it"
  exit 0
fi
dir=${1:-$top/.berth}
mkdir -p "$dir"
if [ "$(id -u)" != 0 ]; then echo "run: berthd needs root (runc, mounts, cgroups)" >&2; exit 1; fi
"$top/hack/deps.sh"
if [ ! -f "$top/examples/manifests/images/busybox.tar" ]; then
  # The first run compiles mkimage and packs the image: tens of quiet seconds.
  echo "run: first run: building the example busybox image from /bin/busybox (compiling hack/mkimage; this takes a little while)..."
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
  curl http://127.0.0.1:11338/metrics # its metrics (not 1338, so it runs beside a real berthd)
Ctrl-C stops the agent and leaves the containers running (as after a crash);
make run-down tears them down.
MSG
# Its CRI socket, CNI configuration and built-in bridge are its own too, so
# nothing lands in /run/berth or /etc/berth of the host.
exec "$top/bin/berthd" --root "$dir/root" --state "$dir/state" --address "$dir/berth.sock" \
  --cri-address "$dir/cri.sock" --cni-conf-dir "$dir/cni/net.d" --cni-bridge berth-run0 --cni-subnet 10.85.0.0/16 \
  --manifests "$top/examples/manifests" --metrics-address 127.0.0.1:11338
