#!/usr/bin/env bash
# Fails when the generated Go code under api/ is not what `make generate`
# makes from the .proto files beside it (someone edited a .proto and did not
# regenerate, or edited a .pb.go by hand), or the manifest reference
# (spec/zz_generated_docs.go, docs/manifests.md) is not what the spec
# types say. The generators are pinned in go.mod (go tool) and protoc is
# Debian's protobuf-compiler, whose version each .pb.go header records, so
# the output is the same on every machine.
set -euo pipefail
cd "$(dirname "$0")/.."
generated=(api spec/zz_generated_docs.go docs/manifests.md)
sums() { { find api -name '*.pb.go' -print0; printf '%s\0' spec/zz_generated_docs.go docs/manifests.md; } | sort -z | xargs -0 sha256sum; }
before=$(sums)
hack/generate.sh
after=$(sums)
if [ "$before" != "$after" ]; then
  echo "check-generated: the .pb.go files under api/ or the manifest reference differ from what make generate makes:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  git --no-pager diff --stat -- "${generated[@]}" >&2 || true
  echo "check-generated: run make generate and commit the result" >&2
  exit 1
fi
# In CI the tree is a clean checkout: what is committed must be what
# generate makes, including files it would add.
if [ "${CI:-}" = true ]; then
  git diff --exit-code --stat -- "${generated[@]}"
  untracked=$(git ls-files --others --exclude-standard -- api)
  if [ -n "$untracked" ]; then echo "check-generated: generated but not committed: $untracked" >&2; exit 1; fi
fi
