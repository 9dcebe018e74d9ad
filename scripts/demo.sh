#!/usr/bin/env bash
# Canopy's main job on its embedded default, from a fresh machine: installs
# the Debian packages, builds the `release` preset and runs canopy-server on
# the embedded SQLite store (build/demo/canopy.db) until Ctrl-C.
# The agent, the API and the demo topology are not built yet; the server says so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh"
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
mkdir -p build/demo
echo
echo "Starting canopy-server on the embedded store build/demo/canopy.db (Ctrl-C stops it)."
echo "Not built yet: the Neutron API, canopy-agent and the demo topology (VMs, router, floating IP)."
exec build/release/bin/canopy-server --store "sqlite:build/demo/canopy.db" "$@"
