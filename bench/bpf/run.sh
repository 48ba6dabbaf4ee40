#!/usr/bin/env bash
# BPF cost bench: ns per event of huatuo's runqlat vs an empty sched_switch program vs
# libbpf-tools' runqlat, from kernel.bpf_stats_enabled=1 (run_time_ns / run_cnt), under
# the same fixed load (2 busy loops + a pipe ping-pong), interleaved rounds. Needs root,
# bpftool and libbpf-tools.  Usage: bench/bpf/run.sh [rounds] [seconds-per-round]
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v runqlat >/dev/null || { echo "install libbpf-tools (apt-get install libbpf-tools)" >&2; exit 1; }
cargo build --release -q -p huatuo-bpf --example bpf_cost
echo "machine: $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
./target/release/examples/bpf_cost "${1:-3}" "${2:-3}"
