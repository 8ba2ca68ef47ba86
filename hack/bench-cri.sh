#!/usr/bin/env bash
# The CRI's figures for make bench (docs/cri.md): medians of N (20) crictl
# calls against a private berthd with the built-in sandbox — runp, create
# + start of a busybox container in it, exec -s, stopp + rmp — and
# berthd's RSS with 30 pods running. One crictl call per step, as a
# kubelet makes one CRI call; crictl's own start (about 25 ms) is in
# every figure. containerd 1.6.20's CRI, measured earlier on this machine:
# runp 120-166 ms, create 29-39, start 74-102, exec 61-82, stopp+rmp
# 173-233.
#   hack/bench-cri.sh        (N=20 PODS=30)
set -euo pipefail
cd "$(dirname "$0")/.."
CRICTL=${CRICTL:-$(command -v crictl || echo "$HOME/go/bin/crictl")}
if [ ! -x "$CRICTL" ]; then echo "bench-cri: n/a (no crictl: go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0)"; exit 0; fi
N=${N:-20}
PODS=${PODS:-30}
IMAGES=${BERTH_TESTIMAGES:-$PWD/.cache/testimages}
T=$(mktemp -d /tmp/berth-benchcri-XXXXXX)
C() { "$CRICTL" --config "$T/crictl.yaml" --runtime-endpoint "unix://$T/state/cri.sock" --image-endpoint "unix://$T/state/cri.sock" --timeout 60s "$@" 2>/dev/null; }
cleanup() {
  if [ -f "$T/pid" ] && kill -0 "$(cat "$T/pid")" 2>/dev/null; then
    C rmp -fa >/dev/null || true
    kill "$(cat "$T/pid")"
    for _ in $(seq 50); do kill -0 "$(cat "$T/pid")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/manifests" "$T/logs"; : > "$T/crictl.yaml"
printf 'cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n' > "$T/config.yaml"
./bin/berthd --root "$T/root" --state "$T/state" --address "$T/state/berth.sock" --cri-address "$T/state/cri.sock" \
  --manifests "$T/manifests" --metrics-address off --config "$T/config.yaml" --cni-conf-dir "$T/cni" \
  --cni-bridge berthbench0 --cni-subnet 10.86.245.0/24 > "$T/berthd.log" 2>&1 &
echo $! > "$T/pid"
for _ in $(seq 100); do C version >/dev/null && break; sleep 0.05; done
./bin/berth --address "$T/state/berth.sock" -n k8s.io image import --name bench.local/busybox:latest "$IMAGES/busybox" >/dev/null
pod() { printf '{"metadata":{"name":"%s","namespace":"default","uid":"%s-uid"},"log_directory":"%s","linux":{}}\n' "$1" "$1" "$T/logs" > "$T/$1.json"; }
cat > "$T/ctr.json" <<'JSON'
{"metadata":{"name":"sh"},"image":{"image":"bench.local/busybox:latest"},"command":["sleep","1000"],"log_path":"sh.log","linux":{}}
JSON
now() { date +%s%N; }
pod warm; P=$(C runp "$T/warm.json"); C stopp "$P" >/dev/null; C rmp "$P" >/dev/null
runp=() cs=() ex=() sr=()
for i in $(seq "$N"); do
  pod "b$i"
  a=$(now); P=$(C runp "$T/b$i.json"); b=$(now)
  CID=$(C create "$P" "$T/ctr.json" "$T/b$i.json"); C start "$CID" >/dev/null; c=$(now)
  C exec -s "$CID" true >/dev/null; d=$(now)
  C stopp "$P" >/dev/null; C rmp "$P" >/dev/null; e=$(now)
  runp+=($(( (b - a) / 1000000 ))) cs+=($(( (c - b) / 1000000 ))) ex+=($(( (d - c) / 1000000 ))) sr+=($(( (e - d) / 1000000 )))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "-" hi}'; }
echo "CRI, berth (built-in sandbox), $N runs, ms: median (min-max)"
printf '  %-22s %5s  (%s)\n' "runp" "$(median "${runp[@]}")" "$(range "${runp[@]}")"
printf '  %-22s %5s  (%s)\n' "create+start" "$(median "${cs[@]}")" "$(range "${cs[@]}")"
printf '  %-22s %5s  (%s)\n' "exec -s" "$(median "${ex[@]}")" "$(range "${ex[@]}")"
printf '  %-22s %5s  (%s)\n' "stopp+rmp" "$(median "${sr[@]}")" "$(range "${sr[@]}")"
for i in $(seq "$PODS"); do pod "r$i"; C runp "$T/r$i.json" >/dev/null; done
n=$(C pods -q --state ready | wc -l)
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$(cat "$T/pid")/status")
echo "  berthd RSS with $n pods running: $((rss / 1024)) MiB"
