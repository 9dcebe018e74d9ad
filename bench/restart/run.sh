#!/usr/bin/env bash
# Restarts and failover, Canopy against OVN in the same run
# (docs/PERFORMANCE.md): Canopy's hitless agent restarts
# (tests/e2e/hitless_restart_test.sh: iperf3 and nc through security groups,
# SNAT and a floating IP across kill -9 and SIGTERM of either end's and the
# gateway's agent) and gateway failover (tests/e2e/gateway_ha_test.sh:
# iperf3 both ways and nc through SNAT across the holder's kill -9, return,
# underlay cut and return), ROUNDS times each; then OVN's
# (bench/restart/ovn_peer.sh: ovn-controller and ovs-vswitchd killed -9
# under an iperf3 stream). Prints every round's figures. Needs root.
# Usage: bench/restart/run.sh [BIN_DIR (build/release/bin)] [ROUNDS (3)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/build/release/bin}
rounds=${2:-3}
[ -x "$bin/canopy-agent" ] || { echo "run.sh: no canopy-agent in $bin" >&2; exit 1; }
for ((i = 1; i <= rounds; i++)); do
  echo "## round $i"
  echo "### Canopy: agent restarts"
  "$root/tests/e2e/hitless_restart_test.sh" "$bin" | grep -E "restart [0-9]|longest gap|adopted"
  echo "### Canopy: gateway failover"
  "$root/tests/e2e/gateway_ha_test.sh" "$bin" | grep -E "longest gap|held by h"
  echo "### OVN"
  "$root/bench/restart/ovn_peer.sh"
done
