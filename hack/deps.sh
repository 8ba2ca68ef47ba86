#!/usr/bin/env bash
# Installs the Debian packages berth's build, tests and examples need.
set -euo pipefail
pkgs=(runc crun busybox-static docker-registry protobuf-compiler libprotobuf-dev attr debootstrap ca-certificates btrfs-progs containernetworking-plugins iptables)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "deps: need root to install: ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
