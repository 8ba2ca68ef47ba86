#!/usr/bin/env bash
# make bench: prints tables of berth's figures. Needs root, the built
# binaries and the test images (make build testimages).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "bench: needs root (mounts, runc)" >&2; exit 1; fi
go run ./hack/bench -images "${BERTH_TESTIMAGES:-.cache/testimages}" -bin bin
# Pulls through a mirror and a resumed pull (bytes the registry sent).
go run ./hack/bench-registry -images "${BERTH_TESTIMAGES:-.cache/testimages}" -bin bin
# Snapshotters side by side on one loopback btrfs: unpack, container commit.
go run ./hack/bench-storage -images "${BERTH_TESTIMAGES:-.cache/testimages}" -bin bin
echo
go test -run '^$' -bench 'Apply' -benchtime 4x ./snapshot/layer/ | grep -E '^Benchmark|ok'
echo
# The run path beside runc run of the same bundle and ctr run --rm (hack/bench-deps.sh
# installs Debian's containerd; "n/a (not installed)" without it), spans, shim RSS, restart.
hack/bench-run.sh
# BENCH_IDLE shortens the idle-CPU window (default five minutes, as issue 5 asks).
go run ./hack/bench-manifests -bin bin -idle "${BENCH_IDLE:-5m}"
# Atomic rollouts of a watched directory: change → Ready and rollback, 20 objects.
go run ./hack/bench-rollout -bin bin
echo
hack/bench-net.sh
echo
# The CRI: medians of 20 crictl calls per step, berthd's RSS with 30 pods.
hack/bench-cri.sh
