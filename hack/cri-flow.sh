#!/usr/bin/env bash
# The crictl flow of docs/cri.md against a private berthd: one crictl call
# per step (runp, create, start, exec -s, stop, rm, stopp+rmp), the sandbox
# built in (no pause image on the node), busybox imported from the test
# images. Prints each step's milliseconds for RUNS runs.
#   CRICTL=~/go/bin/crictl RUNS=5 hack/cri-flow.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CRICTL=${CRICTL:-$(command -v crictl || echo "$HOME/go/bin/crictl")}
RUNS=${RUNS:-5}
IMAGES=${BERTH_TESTIMAGES:-$PWD/.cache/testimages}
T=$(mktemp -d /tmp/berth-criflow-XXXXXX)
trap 'kill "$(cat "$T/pid" 2>/dev/null)" 2>/dev/null || true; sleep 1; [ -n "${KEEP:-}" ] && cp "$T/berthd.log" "$KEEP"; rm -rf "$T"' EXIT
mkdir -p "$T/manifests" "$T/logs"; : > "$T/crictl.yaml"
printf 'cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n%b' "${EXTRA_CONFIG:-}" > "$T/config.yaml"
"${BIN:-./bin}"/berthd --root "$T/root" --state "$T/state" --address "$T/state/berth.sock" --cri-address "$T/state/cri.sock" \
  --manifests "$T/manifests" --metrics-address off --config "$T/config.yaml" --cni-conf-dir "$T/cni" \
  --cni-bridge berthflow0 --cni-subnet 10.86.250.0/24 ${BERTHD_ARGS:-} > "$T/berthd.log" 2>&1 &
echo $! > "$T/pid"
for _ in $(seq 50); do [ -S "$T/state/cri.sock" ] && break; sleep 0.1; done
C() { "$CRICTL" --config "$T/crictl.yaml" --runtime-endpoint "unix://$T/state/cri.sock" --image-endpoint "unix://$T/state/cri.sock" --timeout 30s "$@" 2>/dev/null; }
"${BIN:-./bin}"/berth --address "$T/state/berth.sock" -n k8s.io image import --name flow.local/busybox:latest "$IMAGES/busybox" >/dev/null
cat > "$T/pod.json" <<JSON
{"metadata":{"name":"flow","namespace":"default","uid":"flow-uid"},"log_directory":"$T/logs","linux":{}}
JSON
cat > "$T/ctr.json" <<'JSON'
{"metadata":{"name":"sh"},"image":{"image":"flow.local/busybox:latest"},"command":["sleep","1000"],"log_path":"sh.log","linux":{}}
JSON
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
# A first pod imports the built-in pause; it is not counted.
P=$(C runp "$T/pod.json"); C stopp "$P" >/dev/null; C rmp "$P" >/dev/null
printf '%-6s %6s %6s %6s %6s %6s %6s %8s %6s\n' run runp create start exec stop rm stopp+rmp total
for i in $(seq "$RUNS"); do
  s=$(date +%s%N)
  t1=$(date +%s%N); P=$(C runp "$T/pod.json"); t2=$(date +%s%N)
  CID=$(C create "$P" "$T/ctr.json" "$T/pod.json"); t3=$(date +%s%N)
  start=$(ms C start "$CID")
  exec=$(ms C exec -s "$CID" true)
  stop=$(ms C stop -t 0 "$CID")
  rm=$(ms C rm "$CID")
  sr=$(ms bash -c "$(declare -f C); CRICTL=$CRICTL T=$T; C stopp $P && C rmp $P")
  e=$(date +%s%N)
  printf '%-6s %6d %6d %6d %6d %6d %6d %8d %6d\n' "$i" $(( (t2 - t1) / 1000000 )) $(( (t3 - t2) / 1000000 )) "$start" "$exec" "$stop" "$rm" "$sr" $(( (e - s) / 1000000 ))
done
