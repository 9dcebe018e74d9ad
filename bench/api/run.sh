#!/usr/bin/env bash
# API benchmark: canopy-server against Debian's neutron-server, each a real
# process in noauth mode on loopback, driven in the same run by the same
# client (api_bench --url): port creation with N clients, then
# GET /v2.0/ports with 1,000 ports. Prints a Markdown table of ratios for
# docs/PERFORMANCE.md, then canopy-server alone at 10,000 ports.
# Usage: bench/api/run.sh [--clients 8] [--ports 300]  (neutron-server takes ~0.3 s per port)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
clients=8
ports=300
while [ $# -gt 0 ]; do
  case $1 in
    --clients) clients=$2; shift 2 ;;
    --ports) ports=$2; shift 2 ;;
    *) echo "usage: $0 [--clients N] [--ports N]" >&2; exit 2 ;;
  esac
done
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target api_bench canopy-server >/dev/null

work=$(mktemp -d "$root/build/release/api-bench-XXXXXX")
canopy_pid=
cleanup() {
  if [ -n "$canopy_pid" ] && kill -0 "$canopy_pid" 2>/dev/null; then
    kill "$canopy_pid"
    wait "$canopy_pid" 2>/dev/null || true
  fi
  bench/api/neutron_peer.sh stop "$work/neutron" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
bench() { build/release/bin/api_bench --url "$1" --clients "$clients" --ports "$ports" --max-list "$2" | tee /dev/stderr | tail -n 1; }

start_canopy() {
  local port
  port=$(free_port)
  build/release/bin/canopy-server --store "sqlite:$work/$1.db" --listen "127.0.0.1:$port" \
    --auth noauth --log-level warn >"$work/$1.log" 2>&1 &
  canopy_pid=$!
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
  canopy_url="http://127.0.0.1:$port"
}
stop_canopy() { kill "$canopy_pid"; wait "$canopy_pid" || true; canopy_pid=; }

echo "== canopy-server" >&2
start_canopy canopy
canopy=$(bench "$canopy_url" 1000)
stop_canopy

echo "== neutron-server (Debian)" >&2
mkdir -p "$work/neutron"
neutron_url=$(bench/api/neutron_peer.sh start "$work/neutron" "$(free_port)" | sed -n 's/^neutron-server: //p')
neutron=$(bench "$neutron_url" 1000)
bench/api/neutron_peer.sh stop "$work/neutron"

echo "== canopy-server, 10,000 ports" >&2
start_canopy canopy10k
canopy10k=$(bench "$canopy_url" 10000)
stop_canopy

/usr/bin/python3 - "$canopy" "$neutron" "$canopy10k" <<'PY'
import json, sys
c, n, big = (json.loads(a) for a in sys.argv[1:4])
print()
print(f"{c['clients']} clients, {c['ports']} port creates in all; GET /v2.0/ports 20 times.")
print()
print("| what | canopy-server | neutron-server | ratio |")
print("|---|---:|---:|---:|")
def row(what, key, unit, higher_better):
    a, b = c[key], n[key]
    ratio = a / b if higher_better else b / a
    print(f"| {what} | {a:.1f} {unit} | {b:.1f} {unit} | {ratio:.1f}x |")
row("port create throughput", "create_per_s", "ports/s", True)
row("port create p50", "create_p50_ms", "ms", False)
row("port create p99", "create_p99_ms", "ms", False)
row("GET /v2.0/ports, 1,000 ports, p50", "list1000_p50_ms", "ms", False)
row("GET /v2.0/ports, 1,000 ports, p99", "list1000_p99_ms", "ms", False)
print()
print(f"Errors: canopy {c['create_errors']}, neutron {n['create_errors']}.")
print(f"canopy-server alone, GET /v2.0/ports with {big.get('list10000_count')} ports: "
      f"p50 {big['list10000_p50_ms']:.0f} ms, p99 {big['list10000_p99_ms']:.0f} ms.")
PY
