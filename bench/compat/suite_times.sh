#!/usr/bin/env bash
# The wall time of tempest's Neutron suites on Canopy and on neutron-server
# in the same run: tests/compat/tempest.sh once with canopy-server, once
# with Debian's neutron-server (ML2 and the service plugins, configured
# alike: same Keystone set-up, same tempest.conf, same extension list,
# concurrency 2), suite by suite, then the table.
#
#   bench/compat/suite_times.sh [BIN_DIR] [SUITES]   SUITES: core plugin tempest (default: core)
#
# Needs root (the harness's PostgreSQL); installs neutron-server from Debian
# when missing. Results stay in $CANOPY_BENCH_RESULTS (default: a temp dir).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/build/dev/bin}
suites=${2:-core}
[ "$(id -u)" -eq 0 ] || { echo "suite_times.sh: needs root"; exit 77; }
if ! command -v neutron-server >/dev/null || ! command -v neutron-db-manage >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends neutron-server \
    >/dev/null
fi
out=${CANOPY_BENCH_RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/canopy-suite-times-XXXXXX")}
mkdir -p "$out"
declare -A line
for suite in $suites; do
  for server in canopy neutron; do
    log="$out/$suite-$server.log"
    CANOPY_TEMPEST=$suite CANOPY_TEMPEST_SERVER=$server \
      CANOPY_TEMPEST_RESULTS="$out/$suite-$server" "$root/tests/compat/tempest.sh" "$bin" \
      >"$log" 2>&1 || true
    line[$suite-$server]=$(grep -m 1 '^tempest ' "$log" || echo "no result: see $log")
  done
done
echo "suite times (results in $out):"
for suite in $suites; do
  for server in canopy neutron; do
    printf '  %-8s %s\n' "$server" "${line[$suite-$server]}"
  done
done
