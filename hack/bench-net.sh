#!/usr/bin/env bash
# bench-net.sh: the cost of container networking.
#  - CNI attach of one container to the built-in bridge and its detach
#    (median of 20, BenchmarkAttach): the detach as its caller waits for
#    it and until its background part is done;
#  - `berth run --rm` of busybox true with --network none and --network
#    bridge, interleaved (none, bridge, none, ...) so that the load of a
#    shared machine falls on both alike: medians and their difference;
#  - C containers (default 50) started from one manifest file, bridged and
#    with network none, interleaved over R rounds (default 3): the time from
#    the file renamed into the watched directory until every container's
#    first act (touching a marker on a host bind mount) is seen; medians;
#  - podman's and nerdctl's `run --rm --network bridge` when installed.
# Needs root, make build, the test images and the CNI plugins. Starts its
# own berthd on its own bridge and subnet under a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_RUNS:-20}
C=${BENCH_NET_CONTAINERS:-50}
R=${BENCH_NET_ROUNDS:-3}
IMAGES=${BERTH_TESTIMAGES:-.cache/testimages}
if [ "$(id -u)" != 0 ]; then echo "bench-net: needs root" >&2; exit 1; fi
T=$(mktemp -d /tmp/berth-bench-net-XXXXXX)
BERTH="bin/berth --address $T/state/berth.sock"
DPID=
cleanup() {
  if [ -n "$DPID" ]; then
    rm -f "$T"/manifests/*.yaml
    $BERTH task rm -f keep >/dev/null 2>&1 || true; $BERTH container rm keep >/dev/null 2>&1 || true
    for _ in $(seq 600); do [ "$(ncontainers)" -le 0 ] && break; sleep 0.1; done
    kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true
  fi
  grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del berth-bench 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
ncontainers() { $BERTH container ls 2>/dev/null | tail -n +2 | wc -l; }
now() { date +%s%N; }
# berthd's CPU time and its reaped children's (the CNI plugins, iptables),
# in clock ticks: what the network costs on a loaded machine, where wall
# times mostly measure the others' load.
cpu() { awk '{print $14+$15+$16+$17}' "/proc/$DPID/stat"; }
hz=$(getconf CLK_TCK)
median_ms() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }

attach=$(go test -run '^$' -bench '^BenchmarkAttach$' -benchtime 1x ./network/ | awk '/^BenchmarkAttach/ {for (i=1;i<=NF;i++) {if ($(i+1)=="ms-attach-median") a=$i; if ($(i+1)=="ms-detach-median") d=$i; if ($(i+1)=="ms-detach-background-median") b=$i; if ($(i+1)=="ms-cpu-self-per-container") cs=$i; if ($(i+1)=="ms-cpu-plugins-per-container") cp=$i}} END {print a, d, b, cs, cp}')

mkdir -p "$T/state" "$T/manifests" "$T/staging" "$T/out" && mount -t tmpfs -o size=256m,mode=0700 tmpfs "$T/state"
bin/berthd --root "$T/root" --state "$T/state" --address "$T/state/berth.sock" --manifests "$T/manifests" \
  --metrics-address 127.0.0.1:0 --log-level warn --cni-conf-dir "$T/net.d" \
  --cni-bridge berth-bench --cni-subnet 10.86.244.0/22 >"$T/berthd.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$T/state/berth.sock" ] && break; sleep 0.05; done
$BERTH image import "$IMAGES/busybox" >/dev/null
$BERTH run --rm busybox:latest warm true
$BERTH run -d --network bridge busybox:latest keep sleep 100000 >/dev/null   # keeps the bridge up

# run --rm, interleaved.
: >"$T/none.ns"; : >"$T/bridge.ns"; : >"$T/none.cpu"; : >"$T/bridge.cpu"
for i in $(seq "$N"); do
  for net in none bridge; do
    c=$(cpu); s=$(now); $BERTH run --rm --network "$net" busybox:latest "r$net$i" true >/dev/null; e=$(now)
    sleep 0.3 # the detach's background part, counted with its run
    echo $((e - s)) >>"$T/$net.ns"; echo $(($(cpu) - c)) >>"$T/$net.cpu"
  done
done
none=$(median_ms <"$T/none.ns")
bridge=$(median_ms <"$T/bridge.ns")
ticks_ms() { awk -v hz="$hz" -v n="$2" '{s+=$1} END {printf "%.1f", s*1000/hz/n}' "$1"; }
none_cpu=$(ticks_ms "$T/none.cpu" "$N")
bridge_cpu=$(ticks_ms "$T/bridge.cpu" "$N")

# C containers from one manifest, bridged and none, interleaved.
printf 'apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: busybox}\nspec: {ref: "example.local/busybox:latest", pullPolicy: Never, source: {layout: %s}}\n' \
  "$(realpath "$IMAGES/busybox")" >"$T/manifests/image.yaml"
manifest() { # network prefix
  for i in $(seq "$C"); do
    printf -- '---\napiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: %s%d}\nspec:\n  image: busybox\n  network: %s\n  command: [sh, -c, "touch /out/%s%d; exec sleep 100000"]\n  mounts: [{type: bind, source: %s, target: /out}]\n---\napiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: %s%d}\nspec: {container: %s%d, stopTimeout: 1s}\n' \
      "$2" "$i" "$1" "$2" "$i" "$T/out" "$2" "$i" "$2" "$i"
  done
}
many() { # network prefix -> ns until all C run; CPU ticks appended to $T/many-$1.cpu
  manifest "$1" "$2" >"$T/staging/many.yaml"
  c=$(cpu)
  s=$(now); mv "$T/staging/many.yaml" "$T/manifests/many.yaml"
  for _ in $(seq 6000); do
    [ "$(find "$T/out" -name "$2*" | wc -l)" -ge "$C" ] && break
    sleep 0.01
  done
  e=$(now)
  [ "$(find "$T/out" -name "$2*" | wc -l)" -ge "$C" ] || { echo "bench-net: $C containers ($1) not running after a minute" >&2; exit 1; }
  echo $((e - s))
  echo $(($(cpu) - c)) >>"$T/many-$1.cpu"
  rm -f "$T/manifests/many.yaml"
  # Gone, and their detaches' background part done (namespace files go
  # last), so it does not fall on the next batch.
  for _ in $(seq 1200); do
    [ "$(ncontainers)" -le 1 ] && [ "$(ls "$T/state/.network/netns" | wc -l)" -le 1 ] && break
    sleep 0.1
  done
  rm -f "$T/out/$2"*
}
: >"$T/many-none.ns"; : >"$T/many-bridge.ns"; : >"$T/many-none.cpu"; : >"$T/many-bridge.cpu"
for r in $(seq "$R"); do
  many none "n$r-" >>"$T/many-none.ns"
  many bridge "b$r-" >>"$T/many-bridge.ns"
done
many_none=$(median_ms <"$T/many-none.ns")
many_bridge=$(median_ms <"$T/many-bridge.ns")
many_none_cpu=$(ticks_ms "$T/many-none.cpu" "$R")
many_bridge_cpu=$(ticks_ms "$T/many-bridge.cpu" "$R")
$BERTH task rm -f keep >/dev/null; $BERTH container rm keep >/dev/null

echo "Container networking (medians; containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo '?'); load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-62s %10s\n' "what" "ms"
read -r a d b cs cp <<<"$attach"
printf '%-62s %10s\n' "CNI attach, built-in bridge (of 20)" "$a"
printf '%-62s %10s\n' "  CPU per attach+detach: the Manager's / the plugins' (mean)" "$cs / $cp"
printf '%-62s %10s\n' "CNI detach, as the caller waits (of 20)" "$d"
printf '%-62s %10s\n' "CNI detach, until its background part is done (of 20)" "$b"
printf '%-62s %10s\n' "berth run --rm --network none busybox true (of $N)" "$none"
printf '%-62s %10s\n' "berth run --rm --network bridge busybox true (of $N)" "$bridge"
printf '%-62s %10s\n' "  bridge over none" "$(awk -v a="$bridge" -v b="$none" 'BEGIN {printf "%.1f", a-b}')"
printf '%-62s %10s\n' "  berthd+plugins CPU per run, none (mean of $N)" "$none_cpu"
printf '%-62s %10s\n' "  berthd+plugins CPU per run, bridge (mean of $N)" "$bridge_cpu"
printf '%-62s %10s\n' "$C containers from a manifest, network none (of $R)" "$many_none"
printf '%-62s %10s\n' "$C containers from a manifest, network bridge (of $R)" "$many_bridge"
printf '%-62s %10s\n' "  berthd+plugins CPU per batch, none (mean of $R)" "$many_none_cpu"
printf '%-62s %10s\n' "  berthd+plugins CPU per batch, bridge (mean of $R)" "$many_bridge_cpu"
for tool in podman nerdctl; do
  if command -v "$tool" >/dev/null; then
    t=$(for i in $(seq "$N"); do s=$(now); "$tool" run --rm --network bridge docker.io/library/busybox true >/dev/null 2>&1; e=$(now); echo $((e - s)); done | median_ms)
    printf '%-62s %10s\n' "$tool run --rm --network bridge busybox true (of $N)" "$t"
  else
    printf '%-62s %10s\n' "$tool run --rm --network bridge" "not installed"
  fi
done
