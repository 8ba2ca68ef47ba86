#!/usr/bin/env bash
# A real kubelet (v1.34.4, built from the Go module proxy by
# hack/kubelet-build.sh and cached in .cache/kubelet) runs static pods
# against a private berthd's CRI socket, standalone (no API server):
#   1. a busybox web server pod answers on its pod IP (timed from the
#      manifest's drop: sandbox ready, container running, HTTP answer);
#   2. a container that exits 3 every ~2 s is restarted with the
#      kubelet's growing backoff;
#   3. kill -9 of berthd (restarted at once) disturbs nothing the kubelet
#      sees: same sandbox, same containers, no restart, same IP, the web
#      server answers throughout;
#   4. removing the manifest stops the pod and the kubelet removes it.
#   make kubelet-e2e   (WATCH_S=45: the backoff watch; KEEP=1 keeps the logs;
#                       BERTHD_ARGS="--log-level debug")
# The kubelet listens on 127.0.0.1 only, runs in its own mount namespace
# (overlays on /var/lib and /var/log: it hard-codes paths there) and is
# stopped by this script, by PID; so is berthd. Exit status: 0 when every
# check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBELET=$(hack/kubelet-build.sh | tail -1)
CRICTL=${CRICTL:-$(command -v crictl || echo "$HOME/go/bin/crictl")}
[ -x "$CRICTL" ] || { echo "no crictl (go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0)" >&2; exit 1; }
IMAGES=${BERTH_TESTIMAGES:-$PWD/.cache/testimages}
WATCH_S=${WATCH_S:-45}
PORT=${PORT:-10450}
HEALTHZ_PORT=${HEALTHZ_PORT:-10448}
CGROUP_ROOT=/berth-kubelet-e2e
SUBNET_PREFIX=10.86.248.
T=$(mktemp -d /tmp/berth-kubelet-XXXXXX)
D=$T/kubelet
mkdir -p "$T/manifests" "$T/static" "$D"/{root,pki,pod-logs,ns/varlib/upper,ns/varlib/work,ns/varlog/upper,ns/varlog/work}
SOCK=$T/state/cri.sock
C() { "$CRICTL" --config /dev/null --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" --timeout 20s "$@"; }
now() { date +%s.%N; }
el() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
FAIL=0
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; FAIL=1; }

# --- berthd ---------------------------------------------------------------
# The sandbox image points nowhere (a refused port): pods run berth's
# built-in pause at once, as an offline node does.
printf 'cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n' > "$T/config.yaml"
start_berthd() {
  ./bin/berthd --root "$T/root" --state "$T/state" --address "$T/state/berth.sock" --cri-address "$SOCK" \
    --manifests "$T/manifests" --metrics-address off --config "$T/config.yaml" --cni-conf-dir "$T/cni" \
    --cni-bridge berthkube0 --cni-subnet ${SUBNET_PREFIX}0/24 ${BERTHD_ARGS:-} >> "$T/berthd.log" 2>&1 &
  BPID=$!
  for _ in $(seq 100); do C version >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "berthd did not answer; log:" >&2; tail -20 "$T/berthd.log" >&2; return 1
}

# --- cgroups: the kubelet's root in every v1 hierarchy ----------------------
mk_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/; do
    d=${d%/}
    [ "$(stat -fc %T "$d")" = cgroupfs ] || continue
    mkdir -p "$d$CGROUP_ROOT"
    if [ -f "$d/cpuset.cpus" ]; then
      [ -n "$(cat "$d$CGROUP_ROOT/cpuset.cpus")" ] || cat "$d/cpuset.cpus" > "$d$CGROUP_ROOT/cpuset.cpus"
      [ -n "$(cat "$d$CGROUP_ROOT/cpuset.mems")" ] || cat "$d/cpuset.mems" > "$d$CGROUP_ROOT/cpuset.mems"
    fi
  done
}
rm_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/; do
    d=${d%/}
    [ -d "$d$CGROUP_ROOT" ] && find "$d$CGROUP_ROOT" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}

KPID=
BPID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$KPID" ] && kill -0 "$KPID" 2>/dev/null; then
    kill "$KPID"; for _ in $(seq 100); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ -n "$BPID" ] && kill -0 "$BPID" 2>/dev/null; then
    C rmp -fa >/dev/null 2>&1 || true
    kill "$BPID"; for _ in $(seq 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
  fi
  rm_cgroups
  if [ "$FAIL" = 0 ] && [ "$rc" = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$T"; else echo "logs kept in $T (kubelet/kubelet.log, berthd.log)"; fi
  exit $rc
}
trap cleanup EXIT INT TERM

start_berthd
./bin/berth --address "$T/state/berth.sock" -n k8s.io image import --name docker.io/library/busybox:berth-e2e "$IMAGES/busybox" >/dev/null
mk_cgroups

# --- kubelet ---------------------------------------------------------------
cat > "$D/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: $T/static
fileCheckFrequency: 5s
syncFrequency: 10s
containerRuntimeEndpoint: unix://$SOCK
imageServiceEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
cgroupsPerQOS: true
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
address: 127.0.0.1
port: $PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
clusterDNS: []
resolvConf: /etc/resolv.conf
podLogsDir: $D/pod-logs
serializeImagePulls: false
volumePluginDir: $D/volume-plugins
EOF
# unshare without --fork execs sh, which execs the kubelet: $! is its pid.
unshare --mount --propagation private -- sh -c '
  D=$1; shift
  mount -t overlay berth-varlib -o lowerdir=/var/lib,upperdir=$D/ns/varlib/upper,workdir=$D/ns/varlib/work /var/lib &&
  mount -t overlay berth-varlog -o lowerdir=/var/log,upperdir=$D/ns/varlog/upper,workdir=$D/ns/varlog/work /var/log &&
  exec "$@"' sh "$D" \
  "$KUBELET" --config "$D/config.yaml" --root-dir "$D/root" --cert-dir "$D/pki" --hostname-override berth-e2e-node -v=2 \
  > "$D/kubelet.log" 2>&1 < /dev/null &
KPID=$!
for i in $(seq 120); do
  curl -fsS "http://127.0.0.1:$HEALTHZ_PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$KPID" 2>/dev/null || { echo "kubelet exited:" >&2; tail -30 "$D/kubelet.log" >&2; exit 1; }
  sleep 0.5
done
echo "== $("$KUBELET" --version) pid $KPID on 127.0.0.1:$PORT, berthd pid $BPID"
ss -ltnp 2>/dev/null | grep "pid=$KPID," | awk '{print $4}' | grep -v '^127\.0\.0\.1:' && bad "kubelet listens beyond loopback" || ok "kubelet listens on 127.0.0.1 only"

# --- 1. the web pod ---------------------------------------------------------
cat > "$T/web.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: berth-web
  namespace: default
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 5
  containers:
  - name: httpd
    image: docker.io/library/busybox:berth-e2e
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-berth > /www/index.html && echo httpd starting && exec httpd -f -v -p 8080 -h /www"]
    ports:
    - containerPort: 8080
  - name: flaky
    image: docker.io/library/busybox:berth-e2e
    imagePullPolicy: Never
    command: ["sh", "-c", "echo flaky run; sleep 2; exit 3"]
EOF
cp "$T/web.yaml" "$T/static/.web.yaml.tmp"
t0=$(now)
mv "$T/static/.web.yaml.tmp" "$T/static/web.yaml" # atomic: the kubelet skips dotfiles
POD= tsb= trun= thttp= IP=
for _ in $(seq 3000); do
  if [ -z "$POD" ]; then
    POD=$(C pods -q --name berth-web --state ready 2>/dev/null | head -1)
    [ -n "$POD" ] && { tsb=$(now); IP=$(C inspectp "$POD" | jq -r .status.network.ip); }
  fi
  if [ -n "$POD" ] && [ -z "$trun" ]; then
    [ -n "$(C ps -q --pod "$POD" --name '^httpd$' --state running 2>/dev/null)" ] && trun=$(now)
  fi
  if [ -n "$IP" ] && curl -fsS -m 0.5 "http://$IP:8080/" >/dev/null 2>&1; then
    thttp=$(now); [ -n "$trun" ] || trun=$thttp; break
  fi
  [ -n "$IP" ] && sleep 0.01 || sleep 0.02
done
[ -n "$POD" ] && ok "sandbox ready $(el "$t0" "$tsb") s after the manifest was dropped (pod $POD, IP $IP)" || { bad "no ready sandbox in 60 s"; tail -30 "$D/kubelet.log"; exit 1; }
[ -n "$thttp" ] && ok "web answers on the pod IP $(el "$t0" "$thttp") s after the manifest was dropped (running seen at $(el "$t0" "$trun") s)" || bad "no HTTP answer from $IP:8080"
case $IP in $SUBNET_PREFIX*) ok "pod IP $IP is from berth's bridge";; *) bad "pod IP '$IP' not in ${SUBNET_PREFIX}0/24";; esac
body=$(curl -fsS -m 2 "http://$IP:8080/" || true)
[ "$body" = hello-from-berth ] && ok "GET http://$IP:8080/ -> $body" || bad "GET got '$body'"

# --- 2. crash-loop backoff --------------------------------------------------
echo "== watching flaky's restarts for $WATCH_S s"
tw=$(date +%s)
declare -A seen=()
starts=()
while [ $(( $(date +%s) - tw )) -lt "$WATCH_S" ]; do
  for c in $(C ps -a -q --pod "$POD" --name '^flaky$' 2>/dev/null); do
    [ -n "${seen[$c]:-}" ] && continue
    seen[$c]=1
    read -r att created < <(C inspect "$c" | jq -r '"\(.status.metadata.attempt) \(.status.createdAt)"')
    starts+=("$(date -d "$created" +%s.%N)")
    echo "  attempt $att created at $created"
  done
  sleep 0.5
done
n=${#starts[@]}
gaps=()
for ((k = 1; k < n; k++)); do gaps+=("$(el "${starts[k-1]}" "${starts[k]}")"); done
echo "  gaps between attempts (s, each with the ~2 s run): ${gaps[*]:-}"
if [ "$n" -ge 3 ] && awk -v a="${gaps[0]}" -v b="${gaps[$((n - 2))]}" 'BEGIN{exit !(b > a)}'; then
  ok "flaky restarted by the kubelet with growing backoff: $n attempts in $WATCH_S s"
else
  bad "flaky: $n attempts in $WATCH_S s, gaps ${gaps[*]:-}"
fi
out=$(C logs "$(C ps -a -q --pod "$POD" --name '^flaky$' | head -1)" 2>&1)
grep -q 'flaky run' <<<"$out" && ok "crictl logs of flaky: $(head -1 <<<"$out")" || bad "no flaky output in crictl logs"

# --- 3. kill -9 of berthd ---------------------------------------------------
snap() { C ps -a --pod "$POD" -o json | jq -r '.containers[] | select(.state == "CONTAINER_RUNNING") | "\(.metadata.name) \(.id) \(.metadata.attempt)"' | grep '^httpd ' || true; }
before=$(snap)
pods_before=$(C pods -q --name berth-web | sort | tr '\n' ' ')
kill -9 "$BPID"; wait "$BPID" 2>/dev/null || true
tk=$(now)
served=0
for _ in $(seq 10); do curl -fsS -m 1 "http://$IP:8080/" >/dev/null 2>&1 && served=$((served + 1)); done
start_berthd
echo "  berthd killed and back in $(el "$tk" "$(now)") s (new pid $BPID)"
[ "$served" = 10 ] && ok "web answered while berthd was down" || bad "web answered $served of 10 while berthd was down"
sleep 15 # the kubelet's sync loop (10 s) and PLEG (1 s) have looked again
after=$(snap)
pods_after=$(C pods -q --name berth-web | sort | tr '\n' ' ')
[ "$before" = "$after" ] && ok "after kill -9: httpd is the same container, same attempt ($after)" || bad "httpd changed: '$before' -> '$after'"
[ "$pods_before" = "$pods_after" ] && ok "after kill -9: the same sandbox ($pods_after)" || bad "sandboxes changed: '$pods_before' -> '$pods_after'"
ip2=$(C inspectp "$POD" | jq -r .status.network.ip)
[ "$ip2" = "$IP" ] && ok "after kill -9: same pod IP $ip2" || bad "pod IP $IP -> $ip2"
curl -fsS -m 2 "http://$IP:8080/" >/dev/null && ok "after kill -9: web answers" || bad "after kill -9: no HTTP answer"
if grep -E 'Killing unwanted|SyncLoop \(PLEG\).*ContainerDied.*httpd|Failed to create sandbox' "$D/kubelet.log" | grep -v flaky | head -3 | grep .; then
  bad "the kubelet acted on the pod after the kill"
else
  ok "the kubelet's log shows no sandbox or httpd change after the kill"
fi

# --- 4. manifest removed ----------------------------------------------------
t2=$(now)
rm -f "$T/static/web.yaml"
stopped= gone=
for _ in $(seq 1200); do
  if [ -z "$stopped" ] && [ -z "$(C pods -q --name berth-web --state ready 2>/dev/null)" ] && [ -z "$(C ps -q --pod "$POD" 2>/dev/null)" ]; then
    stopped=$(now)
  fi
  [ -z "$(C pods -q --name berth-web 2>/dev/null)" ] && { gone=$(now); break; }
  sleep 0.1
done
[ -n "$stopped" ] && ok "pod stopped $(el "$t2" "$stopped") s after the manifest was removed" || bad "pod not stopped after the manifest was removed"
[ -n "$gone" ] && ok "pod removed from berth $(el "$t2" "$gone") s after the manifest was removed" || bad "pod still listed 120 s after the manifest was removed"
[ "$FAIL" = 0 ] && echo "kubelet-e2e: all checks passed" || echo "kubelet-e2e: FAILED"
exit $FAIL
