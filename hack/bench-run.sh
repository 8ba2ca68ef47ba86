#!/usr/bin/env bash
# bench-run.sh: `berth run --rm` of busybox true (median of N) beside `runc
# run` of a prepared bundle and, when installed, `ctr run --rm`; berthd and
# per-shim RSS with C running containers. Needs root, make build and the
# test images. Starts its own berthd under a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_RUNS:-20}
C=${BENCH_CONTAINERS:-50}
IMAGES=${BERTH_TESTIMAGES:-.cache/testimages}
if [ "$(id -u)" != 0 ]; then echo "bench-run: needs root" >&2; exit 1; fi
T=$(mktemp -d /tmp/berth-bench-XXXXXX)
BERTH="bin/berth --address $T/state/berth.sock"
DPID=
CPID=
cleanup() {
  if [ -n "$CPID" ]; then kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; fi
  if [ -n "$DPID" ]; then
    $BERTH task ls -o json 2>/dev/null | grep -o '"id": "[^"]*"' | cut -d'"' -f4 | while read -r id; do
      $BERTH task rm -f "$id" >/dev/null 2>&1 || true
    done
    kill "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
  fi
  runc --root "$T/runc" delete -f bench-runc >/dev/null 2>&1 || true
  grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

now() { date +%s%N; }
# median of the numbers on stdin (ns) in ms with one decimal
median_ms() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# The state directory is /run/berth in production: a tmpfs, as here.
mkdir -p "$T/state" && mount -t tmpfs -o size=256m,mode=0700 tmpfs "$T/state"
bin/berthd --root "$T/root" --state "$T/state" --address "$T/state/berth.sock" --manifests "$T/manifests" \
  --metrics-address 127.0.0.1:0 --log-level warn >"$T/berthd.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$T/state/berth.sock" ] && break; sleep 0.05; done
$BERTH image import "$IMAGES/busybox" >/dev/null
$BERTH run --rm busybox:latest warm true   # unpack, page cache

berth_times=$(for i in $(seq "$N"); do s=$(now); $BERTH run --rm busybox:latest "b$i" true; e=$(now); echo $((e - s)); done)

# runc floor: a bundle with a busybox-static rootfs, prepared once.
B=$T/bundle
mkdir -p "$B/rootfs/bin"
cp "$(command -v busybox)" "$B/rootfs/bin/busybox"
ln -s busybox "$B/rootfs/bin/true"
(cd "$B" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"\/bin\/true"/' "$B/config.json"
runc_times=$(for i in $(seq "$N"); do s=$(now); runc --root "$T/runc" run -b "$B" bench-runc >/dev/null; e=$(now); echo $((e - s)); done)

# containerd side by side, when installed: its own daemon under $T and a
# busybox image built from the host's static busybox (hack/mkimage).
ctr_times=""
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  mkdir -p "$T/ctrd" && echo 'version = 2' >"$T/ctrd/config.toml"
  containerd --config "$T/ctrd/config.toml" --root "$T/ctrd/root" --state "$T/state/ctrd" \
    --address "$T/ctrd/c.sock" >"$T/ctrd/log" 2>&1 &
  CPID=$!
  CTR="ctr --address $T/ctrd/c.sock"
  for _ in $(seq 100); do $CTR version >/dev/null 2>&1 && break; sleep 0.05; done
  go run ./hack/mkimage -name docker.io/library/bb:latest -o "$T/bb.tar"
  $CTR images import "$T/bb.tar" >/dev/null
  ref=docker.io/library/bb:latest
  $CTR run --rm "$ref" warm true
  ctr_times=$(for i in $(seq "$N"); do s=$(now); $CTR run --rm "$ref" "c$i" true; e=$(now); echo $((e - s)); done)
  kill "$CPID"; wait "$CPID" 2>/dev/null || true
  CPID=
fi

# Memory: C running sleep containers.
for i in $(seq "$C"); do $BERTH run -d busybox:latest "s$i" sleep 1000; done
shim_rss=()
for i in $(seq "$C"); do
  pid=$(cat "$T/state/default/s$i/shim.pid")
  shim_rss+=("$(rss_kib "$pid")")
done
shim_med=$(printf '%s\n' "${shim_rss[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
shim_max=$(printf '%s\n' "${shim_rss[@]}" | sort -n | tail -1)
berthd_rss=$(rss_kib "$DPID")

printf '%-44s %s\n' "what" "figure"
printf '%-44s %s ms\n' "berth run --rm busybox true (median of $N)" "$(echo "$berth_times" | median_ms)"
printf '%-44s %s ms\n' "runc run of a prepared bundle (median of $N)" "$(echo "$runc_times" | median_ms)"
if [ -n "$ctr_times" ]; then
  printf '%-44s %s ms\n' "ctr run --rm (containerd, median of $N)" "$(echo "$ctr_times" | median_ms)"
else
  echo "containerd not installed: ctr run not measured side by side"
fi
printf '%-44s %s MiB (max %s MiB)\n' "berth-shim RSS, median of $C running" "$(awk "BEGIN {printf \"%.1f\", $shim_med/1024}")" "$(awk "BEGIN {printf \"%.1f\", $shim_max/1024}")"
printf '%-44s %s MiB\n' "berthd RSS with $C running" "$(awk "BEGIN {printf \"%.1f\", $berthd_rss/1024}")"
