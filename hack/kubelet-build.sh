#!/usr/bin/env bash
# Builds a real kubelet from the Go module proxy (no git, no Docker) and
# caches it: prints the binary's path on its last line. About 7 minutes on
# 2 cores with a cold module cache; then instant.
#   KVER=v1.34.4 hack/kubelet-build.sh     (FORCE=1 rebuilds)
# k8s.io/kubernetes' go.mod replaces each staging module (k8s.io/api,
# client-go, ...) with ./staging/src/k8s.io/X, which a module zip does not
# hold: the source is copied to a writable directory, those replaces are
# dropped and each staging module is pinned to its released twin
# (k8s.io/X v0.N.M for kubernetes v1.N.M).
set -euo pipefail
cd "$(dirname "$0")/.."
KVER=${KVER:-v1.34.4}
BIN_DIR=${BIN_DIR:-$PWD/.cache/kubelet}
SRC=${SRC:-${TMPDIR:-/tmp}/berth-kube-src/$KVER}
BIN=$BIN_DIR/kubelet-$KVER
[[ $KVER =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || { echo "KVER must be v1.N.M, got $KVER" >&2; exit 2; }
MINOR=${BASH_REMATCH[1]}
SVER=v0.$MINOR.${BASH_REMATCH[2]}
if [[ -x $BIN && -z ${FORCE:-} ]] && "$BIN" --version 2>/dev/null | grep -q "Kubernetes $KVER\$"; then
  echo "$BIN"; exit 0
fi
mkdir -p "$BIN_DIR"
export GOFLAGS=-mod=mod GOWORK=off # the module zip's go.work points into staging/
DIR=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$KVER" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[[ -d $DIR ]] || { echo "go mod download k8s.io/kubernetes@$KVER failed" >&2; exit 1; }
if [[ ! -f $SRC/.prepared || -n ${FORCE:-} ]]; then
  rm -rf "$SRC"; mkdir -p "$(dirname "$SRC")"
  cp -a "$DIR" "$SRC"; chmod -R u+w "$SRC"
  staging=$(sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$SRC/go.mod")
  sed -i '/=> \.\/staging\/src\//d' "$SRC/go.mod"
  for m in $staging; do sed -i "s#^\(\s*\)$m v0\.0\.0\$#\1$m $SVER#" "$SRC/go.mod"; done
  touch "$SRC/.prepared"
fi
LDF="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF+=" -X $pkg.gitVersion=$KVER -X $pkg.gitMajor=1 -X $pkg.gitMinor=$MINOR -X $pkg.gitTreeState=clean"
done
echo "building kubelet $KVER (staging modules at $SVER) ..." >&2
start=$(date +%s)
(cd "$SRC" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "$LDF" -o "$BIN.tmp" ./cmd/kubelet)
mv "$BIN.tmp" "$BIN"
echo "built in $(( $(date +%s) - start ))s: $("$BIN" --version)" >&2
echo "$BIN"
