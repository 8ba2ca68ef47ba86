#!/usr/bin/env bash
# Runs every Fuzz* target in the tree for a short while each, so a change
# that makes a decoder or layer apply panic on odd input is caught in CI.
# Targets are found, not listed: a new FuzzX in any package runs here with
# no edit. FUZZ_BUDGET (seconds, default 30) is shared among the targets,
# 2 to 8 s each; a crasher is saved under the package's testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${FUZZ_BUDGET:-30}
# Only packages with a func Fuzz in a test file are compiled to be listed.
pkgs=$(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' --exclude-dir=.cache --exclude-dir=testdata . |
  xargs -r -n1 dirname | sort -u)
targets=()
for p in $pkgs; do
  for f in $(go test -list '^Fuzz' "$p" | grep '^Fuzz' || true); do targets+=("$p $f"); done
done
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz-short: no Fuzz targets"; exit 0; fi
each=$((budget / ${#targets[@]}))
((each < 2)) && each=2
((each > 8)) && each=8
echo "fuzz-short: ${#targets[@]} targets, ${each}s each"
for t in "${targets[@]}"; do
  read -r p f <<<"$t"
  echo "fuzz-short: $p $f"
  go test -run '^$' -fuzz "^$f\$" -fuzztime "${each}s" "$p"
done
