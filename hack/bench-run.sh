#!/usr/bin/env bash
# bench-run.sh: the run path side by side (hack/bench-runpath): `berth run
# --rm busybox true`, `runc run` of the very bundle berth generated and,
# when Debian's containerd is installed (hack/bench-deps.sh), `ctr run
# --rm`, interleaved, medians of BENCH_RUNS (default 20) and their ratios;
# where berth's time goes, from its own spans; shim RSS/PSS and berthd RSS
# with BENCH_CONTAINERS (default 50) detached tasks and twice that; kill -9
# of berthd with them running, until all are listed again. Needs root,
# make build and the test images. Starts its own berthd under /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "bench-run: needs root" >&2; exit 1; fi
exec go run ./hack/bench-runpath -bin bin -images "${BERTH_TESTIMAGES:-.cache/testimages}" \
  -n "${BENCH_RUNS:-20}" -containers "${BENCH_CONTAINERS:-50}"
