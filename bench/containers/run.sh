#!/usr/bin/env bash
# The agent's idle CPU and /metrics render time on the fixture node with 200 extra
# Docker-shaped containers and every shipped metric rule (the setup of the console's
# 200-container browser test), in one command.
# Usage: bench/containers/run.sh [SECONDS]   (CPU window, default 60; run from anywhere)
# HUATUO_BIN=<path> measures another build instead of building the release binary.
set -euo pipefail
SECONDS_WINDOW="${1:-60}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d /tmp/huatuo-containers-bench.XXXXXX)"
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${HUATUO_BIN:-}" ]; then
    (cd "$REPO" && cargo build -q --release -p huatuo)
    HUATUO_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/huatuo"
fi
FIXTURE="$REPO/engine/agent/tests/fixtures/node"

# The fixture's cgroup tree plus 200 copies of its Docker container.
cp -r "$FIXTURE/cgroup" "$WORK/cgroup"
MODEL="$WORK/cgroup/system.slice/docker-$(printf 'b%.0s' $(seq 1 64)).scope"
for n in $(seq 0 199); do
    cp -r "$MODEL" "$WORK/cgroup/system.slice/docker-$(printf '%064x' $((0xc00000 + n))).scope"
done
mkdir -p "$WORK/rules" "$WORK/local"
for f in "$REPO"/rules/metrics/*.hto; do cat "$f"; echo; done >"$WORK/rules/metrics.hto"
cat >"$WORK/huatuo.conf" <<CONF
[Pod]
    KubeletReadOnlyPort = 0
    KubeletAuthorizedPort = 0
[Storage.LocalFile]
    Path = "$WORK/local"
CONF
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$REPO" && exec "$HUATUO_BIN" run --no-bpf --procfs-root "$FIXTURE/proc" \
    --sysfs-root "$FIXTURE/sys" --kmsg "$FIXTURE/kmsg" --cgroup-root "$WORK/cgroup" \
    --rules "$WORK/rules" --stdlib stdlib --listen "127.0.0.1:$PORT" \
    --config "$WORK/huatuo.conf" --spool-dir "$WORK/spool") >/dev/null 2>"$WORK/agent.log" &
PID=$!
URL="http://127.0.0.1:$PORT/metrics"
# Ready once every added container has series.
for _ in $(seq 1 240); do
    n=$(curl -fsS "$URL" 2>/dev/null | grep -o 'container_id="[^"]*"' | sort -u | wc -l || true)
    [ "${n:-0}" -gt 200 ] && break
    sleep 0.5
done
[ "${n:-0}" -gt 200 ] || { echo "only ${n:-0} containers in /metrics" >&2; cat "$WORK/agent.log" >&2; exit 1; }
sleep 15 # past the first poll rounds of every rule
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
t0=$(ticks)
sleep "$SECONDS_WINDOW"
t1=$(ticks)
cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="$SECONDS_WINDOW" 'BEGIN {printf "%.1f", t / hz / s * 100}')
renders=""
for _ in 1 2 3; do
    renders="$renders $(curl -fsS "$URL" -o "$WORK/body" -w '%{time_total}')"
done
series=$(grep -vc '^#' "$WORK/body")
bytes=$(wc -c <"$WORK/body")
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
echo "machine: $(uname -r), $(nproc) CPUs; date: $(date -u +%F)"
echo "agent CPU over ${SECONDS_WINDOW}s idle (utime+stime): ${cpu}% of one CPU"
echo "/metrics render s (3 runs):$renders; $series series, $bytes bytes; RSS $((rss / 1024)) MiB"
