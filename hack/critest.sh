#!/usr/bin/env bash
# critest (sigs.k8s.io/cri-tools v1.37.0's CRI validation suite) against a
# private berthd. critest pulls its images by tag from gcr.io,
# registry.k8s.io and k8s.gcr.io: REGISTRY (host:port on 127.0.0.1) must
# serve them with the upstream host stripped (k8s-staging-cri-tools/...,
# e2e-test-images/..., pause:3.9); berth reaches it through a hosts.toml
# mirror per upstream host. Results: $OUT/critest.log, report.json.
#   REGISTRY=127.0.0.1:5099 make critest   [FOCUS=regex SKIP=regex]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${REGISTRY:?set REGISTRY to the 127.0.0.1 registry holding the critest images}"
VER=v1.37.0
OUT=${OUT:-$PWD/.berth/critest/$(date +%Y%m%d-%H%M%S)}
CRITEST=${CRITEST:-$PWD/.berth/critest-$VER}
if [ ! -x "$CRITEST" ]; then
  GOFLAGS=-mod=mod go mod download sigs.k8s.io/cri-tools@$VER
  DIR=$(go env GOMODCACHE)/sigs.k8s.io/cri-tools@$VER
  (cd "$DIR" && GOFLAGS=-mod=vendor CGO_ENABLED=0 go test -c -o "$CRITEST" ./cmd/critest 2>/dev/null ||
    GOFLAGS=-mod=mod CGO_ENABLED=0 go test -c -o "$CRITEST" ./cmd/critest)
fi
T=$(mktemp -d /tmp/berth-critest-XXXXXX)
trap 'kill "$(cat "$T/pid" 2>/dev/null)" 2>/dev/null; sleep 2; rm -rf "$T"' EXIT
mkdir -p "$OUT" "$T/manifests" "$T/certs.d"
for h in gcr.io registry.k8s.io k8s.gcr.io; do
  mkdir -p "$T/certs.d/$h"
  printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REGISTRY" "$REGISTRY" > "$T/certs.d/$h/hosts.toml"
done
./bin/berthd --root "$T/root" --state "$T/state" --address "$T/state/berth.sock" --cri-address "$T/state/cri.sock" \
  --manifests "$T/manifests" --metrics-address off --registry-config-dir "$T/certs.d" --cni-conf-dir "$T/cni" \
  --cni-bridge berthcrit0 --cni-subnet 10.86.251.0/24 > "$OUT/berthd.log" 2>&1 &
echo $! > "$T/pid"
for _ in $(seq 50); do [ -S "$T/state/cri.sock" ] && break; sleep 0.1; done
: > "$OUT/crictl.yaml"
ARGS=(-runtime-endpoint "unix://$T/state/cri.sock" -image-endpoint "unix://$T/state/cri.sock" -config "$OUT/crictl.yaml"
  -ginkgo.timeout 60m -ginkgo.no-color -ginkgo.json-report "$OUT/report.json")
[ -n "${FOCUS:-}" ] && ARGS+=(-ginkgo.focus "$FOCUS")
[ -n "${SKIP:-}" ] && ARGS+=(-ginkgo.skip "$SKIP")
# Serially: this critest is the compiled Ginkgo package, whose -parallel is go test's.
(cd "$OUT" && "$CRITEST" "${ARGS[@]}") > "$OUT/critest.log" 2>&1 && rc=0 || rc=$?
tail -5 "$OUT/critest.log"
echo "critest rc=$rc, results in $OUT"
exit $rc
