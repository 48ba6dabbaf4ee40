#!/usr/bin/env bash
# Builds huatuo and runs the agent with its built-in defaults: the shipped rules, local file
# storage in ./huatuo-local, Prometheus metrics on :19704. Extra arguments go to `huatuo run`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
exec cargo run --release -p huatuo -- run "$@"
