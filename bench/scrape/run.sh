#!/usr/bin/env bash
# Scrape cost of huatuo's /metrics against node_exporter for the families both export (cpu,
# loadavg, vmstat, netdev, netstat, sockstat), then huatuo's scrape latency and RSS with 200
# containers (a generated cgroup v2 tree) and every metric rule.
# Usage: bench/scrape/run.sh [SCRAPES]   (default 200; run from anywhere, as root for apt)
set -euo pipefail
N="${1:-200}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d /tmp/huatuo-scrape-bench.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v prometheus-node-exporter >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
fi
(cd "$REPO" && cargo build -q --release -p huatuo)
HUATUO="$REPO/target/release/huatuo"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# CPU time of a process and all its threads, ns: utime+stime from /proc/PID/stat (clock
# ticks, dead threads included) and the sum of the live threads' schedstat run time (ns).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {print s}'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

wait_for() { # URL PATTERN
    for _ in $(seq 1 120); do
        if curl -fsS "$1" -o "$WORK/body" 2>/dev/null && grep -q "$2" "$WORK/body"; then
            return 0
        fi
        sleep 0.5
    done
    echo "timed out waiting for $2 at $1" >&2
    return 1
}

# Scrapes URL N times sequentially; prints "p50_ms p99_ms cpu_us_per_scrape_ticks
# cpu_us_per_scrape_schedstat bytes".
measure() { # PID URL
    local pid=$1 url=$2 ticks0 ns0 ticks1 ns1 hz
    hz=$(getconf CLK_TCK)
    curl -fsS "$url" -o /dev/null # warm up
    ticks0=$(cpu_ticks "$pid"); ns0=$(cpu_ns "$pid")
    for _ in $(seq 1 "$N"); do
        curl -fsS "$url" -o /dev/null -w '%{time_total}\n'
    done >"$WORK/lat"
    ticks1=$(cpu_ticks "$pid"); ns1=$(cpu_ns "$pid")
    local bytes
    bytes=$(curl -fsS "$url" | wc -c)
    sort -n "$WORK/lat" | awk -v n="$N" -v t=$((ticks1 - ticks0)) -v ns=$((ns1 - ns0)) \
        -v hz="$hz" -v bytes="$bytes" '
        { v[NR] = $1 }
        END {
            p50 = v[int(n * 0.50 + 0.5)]; p99 = v[int(n * 0.99 + 0.5)]
            printf "%.2f %.2f %.0f %.0f %d\n", p50 * 1000, p99 * 1000,
                t / hz * 1e6 / n, ns / 1e3 / n, bytes
        }'
}

# --- Shared families -------------------------------------------------------------------
mkdir -p "$WORK/rules" "$WORK/empty-cgroup"
for r in cpu loadavg vmstat netdev netstat sockstat; do
    cp "$REPO/rules/metrics/$r.hto" "$WORK/rules/"
done
touch "$WORK/empty-cgroup/cgroup.controllers"
cat >"$WORK/huatuo.conf" <<CONF
[Storage.ES]
    Address = ""
[Storage.LocalFile]
    Path = "$WORK/records"
[Pod]
    KubeletReadOnlyPort = 0
    KubeletAuthorizedPort = 0
CONF

NE_PORT=$(free_port)
prometheus-node-exporter --web.listen-address="127.0.0.1:$NE_PORT" --collector.disable-defaults \
    --collector.cpu --collector.loadavg --collector.vmstat --collector.netdev \
    --collector.netstat --collector.sockstat >/dev/null 2>&1 &
NE_PID=$!; PIDS+=("$NE_PID")
HT_PORT=$(free_port)
(cd "$REPO" && exec "$HUATUO" run --no-bpf --rules "$WORK/rules" --stdlib stdlib \
    --config "$WORK/huatuo.conf" --cgroup-root "$WORK/empty-cgroup" \
    --listen "127.0.0.1:$HT_PORT" --spool-dir "$WORK/spool") >/dev/null 2>&1 &
HT_PID=$!; PIDS+=("$HT_PID")
wait_for "http://127.0.0.1:$NE_PORT/metrics" node_sockstat_sockets_used
# cpu_util needs two reads of /proc/stat (10 s apart).
wait_for "http://127.0.0.1:$HT_PORT/metrics" huatuo_bamai_cpu_util_total
ne=$(measure "$NE_PID" "http://127.0.0.1:$NE_PORT/metrics")
ht=$(measure "$HT_PID" "http://127.0.0.1:$HT_PORT/metrics")
ht_rss=$(rss_kb "$HT_PID")
kill "$NE_PID" "$HT_PID"

# --- 200 containers ----------------------------------------------------------------------
CG="$WORK/cgroup"
SRC="$REPO/engine/agent/tests/fixtures/node/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod11111111_2222_3333_4444_555555555555.slice/cri-containerd-1234567890123456789012345678901234567890123456789012345678901234.scope"
mkdir -p "$CG"
echo "cpu io memory pids" >"$CG/cgroup.controllers"
for i in $(seq 1 200); do
    pod=$(printf 'pod%08d_0000_0000_0000_%012d' "$i" "$i")
    id=$(printf '%064x' "$i")
    dir="$CG/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-$pod.slice/cri-containerd-$id.scope"
    mkdir -p "$dir"
    cp "$SRC"/* "$dir/"
done
HT_PORT=$(free_port)
(cd "$REPO" && exec "$HUATUO" run --no-bpf --rules rules/metrics --stdlib stdlib \
    --config "$WORK/huatuo.conf" --cgroup-root "$CG" \
    --listen "127.0.0.1:$HT_PORT" --spool-dir "$WORK/spool") >/dev/null 2>&1 &
HT_PID=$!; PIDS+=("$HT_PID")
wait_for "http://127.0.0.1:$HT_PORT/metrics" huatuo_bamai_cpu_util_container_sys
sleep 12 # a second poll round, so every container family is there
series=$(curl -fsS "http://127.0.0.1:$HT_PORT/metrics" | grep -c 'container_id=' || true)
ct=$(measure "$HT_PID" "http://127.0.0.1:$HT_PORT/metrics")
ct_rss=$(rss_kb "$HT_PID")
kill "$HT_PID"

read -r ne50 ne99 neticks nens nebytes <<<"$ne"
read -r ht50 ht99 htticks htns htbytes <<<"$ht"
read -r ct50 ct99 ctticks ctns ctbytes <<<"$ct"
cat <<OUT
machine: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); date: $(date -u +%F); scrapes: $N
| exporter | p50 ms | p99 ms | CPU µs/scrape (stat) | CPU µs/scrape (schedstat) | body bytes |
|---|---|---|---|---|---|
| node_exporter $(prometheus-node-exporter --version 2>&1 | awk 'NR==1 {print $3}') (6 collectors) | $ne50 | $ne99 | $neticks | $nens | $nebytes |
| huatuo (6 rule files) | $ht50 | $ht99 | $htticks | $htns | $htbytes |
| huatuo, 200 containers, all metric rules | $ct50 | $ct99 | $ctticks | $ctns | $ctbytes |
huatuo RSS: $((ht_rss / 1024)) MiB (shared families), $((ct_rss / 1024)) MiB (200 containers, $series container series)
OUT
