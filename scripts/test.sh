#!/usr/bin/env bash
# Runs every test of the workspace: unit, conformance, property, integration and (as root)
# kernel tests. Kernel tests skip with a message when not root, unless CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh --test
cargo test --workspace --no-fail-fast -- --test-threads=2
