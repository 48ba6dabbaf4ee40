#!/usr/bin/env bash
# Memory soak of the release agent: shipped rules and config, every template loaded, while
# a loop causes drops, OOM kills, link flaps, direct IO, cpusys profiles and watch clients
# come and go; RSS sampled every 10 s, the last five minutes must be flat within 5 % and
# under 40 MiB. The driver is the `soak` test of engine/agent (which CI runs for 3 minutes, on
# a debug build, without profiles and with a 256-event watch replay buffer). SOAK_PROFILES=0
# leaves the cpusys profiles out; SOAK_CONTINUOUS=1 adds continuous profiling at 99 Hz;
# SOAK_REPLAY sets the replay buffer (default: shipped 4096).
# Usage: bench/soak/run.sh [SECONDS]   (default 1200; as root, on a test machine)
set -euo pipefail
SECONDS_TO_RUN="${1:-1200}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${SOAK_OUT:-/tmp/huatuo-soak-$(date +%s).txt}"
cd "$REPO"
SOAK_SECONDS="$SECONDS_TO_RUN" SOAK_OUT="$OUT" SOAK_PROFILES="${SOAK_PROFILES:-1}" \
    SOAK_CONTINUOUS="${SOAK_CONTINUOUS:-0}" \
    SOAK_REPLAY="${SOAK_REPLAY:-4096}" CI=true \
    cargo test --release -p huatuo --test soak -- --nocapture --test-threads=1
echo "RSS samples (seconds, bytes): $OUT"
