#!/usr/bin/env bash
# bench-deps.sh: what make bench compares berth with, and nothing the
# build or the tests need: Debian's containerd (ctr run --rm column).
# Without it the bench prints "n/a (not installed)". Root, idempotent.
set -euo pipefail
if command -v containerd >/dev/null && command -v ctr >/dev/null; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps dpkg from starting a system containerd on this node.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.berth-bench
chmod +x /usr/sbin/policy-rc.d.berth-bench
if [ ! -e /usr/sbin/policy-rc.d ]; then
  cp /usr/sbin/policy-rc.d.berth-bench /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
rm -f /usr/sbin/policy-rc.d.berth-bench
apt-get install -y --no-install-recommends containerd
