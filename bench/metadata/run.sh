#!/usr/bin/env bash
# The metadata service's rate and latency on one host: GUESTS namespace
# guests (default 4) on one canopy-agent, each with CONNECTIONS connections
# (default 2) sending GETs for SECONDS (default 10), once answered by the
# agent from the ports (no Nova), once proxied to a Nova metadata stand-in
# (tests/e2e/nova_metadata_standin.py). The peer, in the same run: the same
# load straight at the stand-in from the host, so that the proxy's cost is
# a ratio to what its backend serves alone. Prints requests/s and p50/p99
# latency of each. Needs root.
# Usage: bench/metadata/run.sh [SECONDS] [GUESTS] [CONNECTIONS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${1:-10}
guests=${2:-4}
connections=${3:-2}
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target canopy-server canopy-agent -j2 >/dev/null
bin="$root/build/release/bin"
here="$root/tests/e2e"
source "$here/lib.sh"
source "$here/netns.sh"
load="$root/bench/metadata/load.py"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
echo "bench-secret" >"$work/secret"
bg "$tag-h2" sh -c "exec python3 '$here/nova_metadata_standin.py' 8775 '$work/secret' \
  >'$work/nova.log' 2>&1"
start_agent h1 192.168.77.1 --metadata-rate 100000 --log-level warn
start_agent h2 192.168.77.2 --metadata-rate 100000 --log-level warn \
  --nova-metadata-url http://127.0.0.1:8775 --metadata-secret-file "$work/secret"
net=$(api POST /v2.0/networks '{"network": {"name": "bench"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/22"}}' >/dev/null
vms=()
for host in h1 h2; do
  for i in $(seq "$guests"); do
    vm="$host-vm$i"
    new_port "$vm" "$net"
    api PUT "/v2.0/ports/$port_id" '{"port": {"device_id": "'"$(cat /proc/sys/kernel/random/uuid)"'"}}' >/dev/null
    add_vm "$vm" "$host" "$port_id" "$port_mac"
    dhcp "$vm" >/dev/null
  done
done
ready() { [ "$(in_ns "$tag-$1-vm1" curl -s -m 2 -o /dev/null -w '%{http_code}' \
  "http://169.254.169.254$2")" = 200 ]; }
retry 30 ready h1 /latest/meta-data/instance-id || fail "no metadata on h1"
retry 30 ready h2 /openstack/latest/meta_data.json || fail "no metadata through Nova on h2"

# run NAME COMMAND-PREFIX... : the load from every guest at once, merged.
summarize() {
  python3 -c '
import json, sys
name, seconds = sys.argv[1], float(sys.argv[2])
runs = [json.loads(l) for l in open(sys.argv[3]) if l.strip()]
lat = sorted(x for r in runs for x in r["latencies"])
errors = sum(r["errors"] for r in runs)
if not lat:
    print("%-34s no answers (%d errors)" % (name, errors)); sys.exit(1)
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000.0
print("%-34s %9.0f req/s   p50 %6.2f ms   p99 %6.2f ms   errors %d" %
      (name, len(lat) / seconds, pct(0.50), pct(0.99), errors))' "$@"
}
from_guests() {  # from_guests HOST PATH OUT
  local pids=() i
  : >"$3"
  for i in $(seq "$guests"); do
    in_ns "$tag-$1-vm$i" python3 "$load" "$connections" "$seconds" "$2" >>"$3" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}
echo "metadata service, $guests guests x $connections connections, ${seconds}s each ($(nproc) cores)"
from_guests h1 /latest/meta-data/instance-id "$work/standalone.json"
summarize "Canopy, answered from the port" "$seconds" "$work/standalone.json"
from_guests h2 /openstack/latest/meta_data.json "$work/nova.json"
summarize "Canopy, proxied to the stand-in" "$seconds" "$work/nova.json"
# The peer: the stand-in alone, from its host (no signature check passes
# without the headers: give them as the proxy does).
: >"$work/direct.json"
pids=()
for i in $(seq "$guests"); do
  in_ns "$tag-h2" python3 - "$connections" "$seconds" "$work/secret" >>"$work/direct.json" <<'PY' &
import hashlib, hmac, http.client, json, sys, threading, time
n, seconds, secret = int(sys.argv[1]), float(sys.argv[2]), open(sys.argv[3], "rb").read().strip()
iid = "11111111-2222-3333-4444-555555555555"
h = {"X-Instance-ID": iid, "X-Tenant-ID": "demo", "X-Forwarded-For": "10.0.0.5",
     "X-Instance-ID-Signature": hmac.new(secret, iid.encode(), hashlib.sha256).hexdigest()}
deadline = time.monotonic() + seconds
lat, errors, lock = [], [0], threading.Lock()
def worker():
    mine, failed = [], 0
    c = http.client.HTTPConnection("127.0.0.1", 8775, timeout=5)
    while time.monotonic() < deadline:
        t = time.monotonic()
        try:
            c.request("GET", "/openstack/latest/meta_data.json", headers=h)
            r = c.getresponse(); r.read()
            if r.status != 200: failed += 1; continue
        except Exception:
            failed += 1; c.close(); c = http.client.HTTPConnection("127.0.0.1", 8775, timeout=5); continue
        mine.append(int((time.monotonic() - t) * 1e6))
    with lock: lat.extend(mine); errors[0] += failed
ts = [threading.Thread(target=worker) for _ in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps({"requests": len(lat), "errors": errors[0], "latencies": lat}))
PY
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
summarize "peer: the stand-in directly" "$seconds" "$work/direct.json"
