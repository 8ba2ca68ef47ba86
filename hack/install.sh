#!/usr/bin/env bash
# Installs berth where distributions expect it, from binaries already built:
#   hack/install.sh BINDIR   (PREFIX=/usr/local, DESTDIR= for packaging)
# binaries in $PREFIX/bin, the systemd unit (ExecStart pointing at them),
# man pages, shell completions, and /etc/berth/config.yaml (berthd's
# defaults; an existing config is never overwritten).
set -euo pipefail
bindir=${1:?usage: install.sh BINDIR}
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
src=$(cd "$(dirname "$0")/.." && pwd)

install -d "$dest$prefix/bin"
for b in berthd berth berth-shim berth-init berth-pause; do
  install -m 0755 "$bindir/$b" "$dest$prefix/bin/$b"
done

unitdir="$dest$prefix/lib/systemd/system"
install -d "$unitdir"
sed "s|/usr/local/bin/|$prefix/bin/|g; s|/usr/local/share/|$prefix/share/|g" \
  "$src/contrib/systemd/berthd.service" >"$unitdir/berthd.service"
chmod 0644 "$unitdir/berthd.service"

install -d "$dest$prefix/share/man/man1"
"$bindir/berth" __gendocs man "$dest$prefix/share/man/man1"

install -d "$dest$prefix/share/bash-completion/completions" \
  "$dest$prefix/share/zsh/site-functions" \
  "$dest$prefix/share/fish/vendor_completions.d"
"$bindir/berth" completion bash >"$dest$prefix/share/bash-completion/completions/berth"
"$bindir/berth" completion zsh >"$dest$prefix/share/zsh/site-functions/_berth"
"$bindir/berth" completion fish >"$dest$prefix/share/fish/vendor_completions.d/berth.fish"

install -d "$dest$prefix/share/doc/berth"
install -m 0644 "$src/README.md" "$dest$prefix/share/doc/berth/README.md"

install -d -m 0755 "$dest/etc/berth"
if [ ! -e "$dest/etc/berth/config.yaml" ]; then
  "$bindir/berthd" config default >"$dest/etc/berth/config.yaml"
  chmod 0644 "$dest/etc/berth/config.yaml"
fi
echo "installed berth under $dest$prefix (unit: $unitdir/berthd.service)"
