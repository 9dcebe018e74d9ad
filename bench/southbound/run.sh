#!/usr/bin/env bash
# Southbound fan-out: the time from an API write to every one of N agents
# (real gRPC streams on loopback, in one process) having applied it.
# Usage: bench/southbound/run.sh [--agents 50] [--rounds 20]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target fanout_bench >/dev/null
build/release/bin/fanout_bench "$@" 2>/dev/null
