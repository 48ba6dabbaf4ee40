#!/usr/bin/env bash
# BPF cost bench: ns per event (kernel.bpf_stats_enabled=1, run_time_ns / run_cnt) of
# huatuo's templates next to an empty tp_btf program on the same tracepoints and next to
# libbpf-tools (runqlat, biolatency, softirqs) under the same fixed loads, interleaved rounds,
# medians.  Part 1 (bpf_cost): runqlat under 2 busy loops + a pipe ping-pong.
# Part 2 (bpf_cost_templates): blockio (O_DIRECT writes to a loop device made here),
# softirq_latency/softirq_off (loopback UDP flood), drops (connects to a closed port),
# reclaim (page-cache writes in a 32 MiB memory cgroup made here), netrx_latency (loopback
# TCP stream), profiler (per sample).  Everything created (loop device, image, memcg,
# scratch dir) is removed on exit, and bpf_stats_enabled restored.
# Needs root, bpftool, losetup, cgroup v1 memory controller and libbpf-tools.
# Usage: bench/bpf/run.sh [rounds] [seconds-per-round]   (about 20 * rounds * (secs + 1) s)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${1:-3}"
SECS="${2:-3}"
for tool in runqlat biolatency softirqs; do
  command -v "$tool" >/dev/null || { echo "install libbpf-tools (apt-get install libbpf-tools)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
MEMROOT=/sys/fs/cgroup/memory
[ -d "$MEMROOT" ] || { echo "no cgroup v1 memory controller at $MEMROOT" >&2; exit 1; }

cargo build --release -q -p huatuo-bench --bin bpf_cost --bin bpf_cost_templates

STATS_BEFORE="$(cat /proc/sys/kernel/bpf_stats_enabled)"
SCRATCH="$(mktemp -d /var/tmp/huatuo-bpf-bench.XXXXXX)"
MEMCG="$MEMROOT/huatuo-bpf-bench-$$"
LOOPDEV=""
cleanup() {
  [ -n "$LOOPDEV" ] && losetup -d "$LOOPDEV" 2>/dev/null || true
  if [ -d "$MEMCG" ]; then
    # move any leftover task out before removing the group
    while read -r pid; do echo "$pid" > "$MEMROOT/cgroup.procs" 2>/dev/null || true; done < "$MEMCG/cgroup.procs"
    rmdir "$MEMCG" 2>/dev/null || echo "warning: could not remove $MEMCG" >&2
  fi
  rm -rf "$SCRATCH"
  echo "$STATS_BEFORE" > /proc/sys/kernel/bpf_stats_enabled
}
trap cleanup EXIT INT TERM

truncate -s 64M "$SCRATCH/loop.img"
LOOPDEV="$(losetup --find --show "$SCRATCH/loop.img")"
mkdir "$MEMCG"
echo $((32 << 20)) > "$MEMCG/memory.limit_in_bytes"

echo "machine: $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "loop device: $LOOPDEV, memcg: $MEMCG (32 MiB)"
echo "## runqlat"
./target/release/bpf_cost "$ROUNDS" "$SECS"
echo "## other templates"
./target/release/bpf_cost_templates "$LOOPDEV" "$MEMCG" "$SCRATCH" "$ROUNDS" "$SECS"
