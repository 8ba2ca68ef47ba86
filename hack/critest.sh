#!/usr/bin/env bash
# critest (sigs.k8s.io/cri-tools v1.37.0's CRI validation suite) against a
# private berthd, offline. critest pulls its images by tag from gcr.io,
# registry.k8s.io and k8s.gcr.io: hack/criimages builds stand-ins for all
# of them (from the host's busybox and itself) and serves them from an
# in-memory registry on 127.0.0.1; berthd reaches it through a certs.d
# mirror per upstream host. REGISTRY=host:port uses a registry of your own
# instead (holding the same names, upstream host stripped).
#   make critest   [FOCUS=regex SKIP=regex OUT=dir]
# Results: $OUT/critest.log, report.json, summary.txt (counts, wall time,
# every spec that did not pass).
set -euo pipefail
cd "$(dirname "$0")/.."
VER=v1.37.0
OUT=${OUT:-$PWD/.berth/critest/$(date +%Y%m%d-%H%M%S)}
CRITEST=${CRITEST:-$PWD/.berth/critest-$VER}
mkdir -p "$OUT" .berth
if [ ! -x "$CRITEST" ]; then
  GOFLAGS=-mod=mod go mod download sigs.k8s.io/cri-tools@$VER
  DIR=$(go env GOMODCACHE)/sigs.k8s.io/cri-tools@$VER
  (cd "$DIR" && GOFLAGS=-mod=vendor CGO_ENABLED=0 go test -c -o "$CRITEST" ./cmd/critest 2>/dev/null ||
    GOFLAGS=-mod=mod CGO_ENABLED=0 go test -c -o "$CRITEST" ./cmd/critest)
fi
T=$(mktemp -d /tmp/berth-critest-XXXXXX)
CRICTL=${CRICTL:-$(command -v crictl || echo "$HOME/go/bin/crictl")}
stop() { # what critest left, then by PID what this script started
  local p
  [ -S "$T/state/cri.sock" ] && [ -x "$CRICTL" ] &&
    "$CRICTL" --config /dev/null -r "unix://$T/state/cri.sock" --timeout 30s rmp -fa >/dev/null 2>&1
  for p in "$T/pid" "$T/registry.pid"; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null && for _ in $(seq 50); do kill -0 "$(cat "$p")" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$T"
}
trap stop EXIT
if [ -z "${REGISTRY:-}" ]; then
  CGO_ENABLED=0 go build -o .berth/criimages ./hack/criimages
  .berth/criimages -listen 127.0.0.1:0 -addr-file "$T/registry.addr" > "$OUT/criimages.log" 2>&1 &
  echo $! > "$T/registry.pid"
  for _ in $(seq 300); do [ -s "$T/registry.addr" ] && break; kill -0 "$(cat "$T/registry.pid")" || break; sleep 0.1; done
  REGISTRY=$(cat "$T/registry.addr" 2>/dev/null) || { cat "$OUT/criimages.log"; exit 1; }
fi
mkdir -p "$T/manifests" "$T/certs.d"
for h in gcr.io registry.k8s.io k8s.gcr.io; do
  mkdir -p "$T/certs.d/$h"
  printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REGISTRY" "$REGISTRY" > "$T/certs.d/$h/hosts.toml"
done
./bin/berthd --root "$T/root" --state "$T/state" --address "$T/state/berth.sock" --cri-address "$T/state/cri.sock" \
  --manifests "$T/manifests" --metrics-address off --registry-config-dir "$T/certs.d" --cni-conf-dir "$T/cni" \
  --cni-bridge berthcrit0 --cni-subnet 10.86.251.0/24 ${BERTHD_ARGS:-} > "$OUT/berthd.log" 2>&1 &
echo $! > "$T/pid"
for _ in $(seq 50); do [ -S "$T/state/cri.sock" ] && break; sleep 0.1; done
: > "$OUT/crictl.yaml"
ARGS=(-runtime-endpoint "unix://$T/state/cri.sock" -image-endpoint "unix://$T/state/cri.sock" -config "$OUT/crictl.yaml"
  -ginkgo.timeout 60m -ginkgo.no-color -ginkgo.json-report "$OUT/report.json")
[ -n "${FOCUS:-}" ] && ARGS+=(-ginkgo.focus "$FOCUS")
[ -n "${SKIP:-}" ] && ARGS+=(-ginkgo.skip "$SKIP")
# Serially: this critest is the compiled Ginkgo package, whose -parallel is go test's.
start=$(date +%s.%N)
(cd "$OUT" && "$CRITEST" "${ARGS[@]}") > "$OUT/critest.log" 2>&1 && rc=0 || rc=$?
wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
if [ -f "$OUT/report.json" ]; then
  jq -r --arg wall "$wall" '[.[].SpecReports[] | select(.LeafNodeType == "It")] as $s |
    "critest \($s | length) specs in \($wall) s: " + ([$s | group_by(.State)[] | "\(.[0].State)=\(length)"] | join(" ")),
    ($s[] | select(.State != "passed" and .State != "skipped") |
      "  \(.State): \(.ContainerHierarchyTexts | join(" ")) \(.LeafNodeText)\n      \(.Failure.Message | split("\n")[0] | .[0:240])")' \
    "$OUT/report.json" > "$OUT/summary.txt"
  cat "$OUT/summary.txt"
fi
echo "critest rc=$rc, results in $OUT"
exit $rc
