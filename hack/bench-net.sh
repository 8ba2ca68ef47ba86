#!/usr/bin/env bash
# bench-net.sh: the cost of container networking. CNI attach and detach of
# one container to the built-in bridge (median of 20, BenchmarkAttach), and
# `berth run --rm` of busybox true with --network none beside --network
# bridge (median of N), with podman's and nerdctl's `run --rm --network
# bridge` beside them when installed. Needs root, make build, the test
# images and the CNI plugins. Starts its own berthd on its own bridge and
# subnet under a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_RUNS:-20}
IMAGES=${BERTH_TESTIMAGES:-.cache/testimages}
if [ "$(id -u)" != 0 ]; then echo "bench-net: needs root" >&2; exit 1; fi
T=$(mktemp -d /tmp/berth-bench-net-XXXXXX)
BERTH="bin/berth --address $T/state/berth.sock"
DPID=
cleanup() {
  if [ -n "$DPID" ]; then kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; fi
  grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del berth-bench 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s%N; }
median_ms() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }

attach=$(go test -run '^$' -bench '^BenchmarkAttach$' -benchtime 1x ./network/ | awk '/^BenchmarkAttach/ {for (i=1;i<=NF;i++) {if ($(i+1)=="ms-attach-median") a=$i; if ($(i+1)=="ms-detach-median") d=$i}} END {print a, d}')

mkdir -p "$T/state" && mount -t tmpfs -o size=256m,mode=0700 tmpfs "$T/state"
bin/berthd --root "$T/root" --state "$T/state" --address "$T/state/berth.sock" --manifests "$T/manifests" \
  --metrics-address 127.0.0.1:0 --log-level warn --cni-conf-dir "$T/net.d" \
  --cni-bridge berth-bench --cni-subnet 10.86.249.0/24 >"$T/berthd.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$T/state/berth.sock" ] && break; sleep 0.05; done
$BERTH image import "$IMAGES/busybox" >/dev/null
$BERTH run --rm busybox:latest warm true
$BERTH run -d --network bridge busybox:latest keep sleep 1000 >/dev/null   # keeps the bridge up
times() { for i in $(seq "$N"); do s=$(now); "$@" "r$i" true >/dev/null; e=$(now); echo $((e - s)); done | median_ms; }
none=$(times $BERTH run --rm --network none busybox:latest)
bridge=$(times $BERTH run --rm --network bridge busybox:latest)
$BERTH task rm -f keep >/dev/null; $BERTH container rm keep >/dev/null

echo "Container networking (medians; containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo '?'))"
printf '%-52s %10s\n' "what" "ms"
read -r a d <<<"$attach"
printf '%-52s %10s\n' "CNI attach, built-in bridge (of 20)" "$a"
printf '%-52s %10s\n' "CNI detach, built-in bridge (of 20)" "$d"
printf '%-52s %10s\n' "berth run --rm --network none busybox true (of $N)" "$none"
printf '%-52s %10s\n' "berth run --rm --network bridge busybox true (of $N)" "$bridge"
for tool in podman nerdctl; do
  if command -v "$tool" >/dev/null; then
    t=$(for i in $(seq "$N"); do s=$(now); "$tool" run --rm --network bridge docker.io/library/busybox true >/dev/null 2>&1; e=$(now); echo $((e - s)); done | median_ms)
    printf '%-52s %10s\n' "$tool run --rm --network bridge busybox true (of $N)" "$t"
  else
    printf '%-52s %10s\n' "$tool run --rm --network bridge" "not installed"
  fi
done
