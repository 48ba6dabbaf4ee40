#!/usr/bin/env bash
# Whole-agent overhead: interleaved rounds of agent off / agent on (release build, shipped rules
# and config, every template) / floor (empty programs on exactly the hooks the agent attached),
# each under perf bench sched messaging (sockets, pipes), loopback TCP stream (iperf3) and
# request/response, a fork+exec storm and buffered + O_DIRECT file writes. Prints medians, the
# loss against `off`, the agent's CPU and the BPF time per second of load per program.
# Needs root, perf, bpftool, clang; iperf3 is installed here when missing (bench only).
# Usage: bench/overhead/run.sh [--quick] [--rounds N] [--secs S] [--loops L] [--io-mb M] [--min-window S]
#   [--modes off,on,floor,floor-tp,on-nosoftirq,on-profiling] [--loads SUBSTRING,...]
#   HUATUO_BIN=path runs that agent binary instead of the release build (A/B of two builds).
#   --quick: 1 round of short loads, for developing the bench; figures need a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for tool in perf bpftool clang; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/deps.sh, linux-perf)" >&2; exit 1; }
done
if ! command -v iperf3 >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
fi
cargo build --release -q -p huatuo -p huatuo-bench --bin huatuo --bin hook_floor
exec python3 bench/overhead/overhead.py "$@"
