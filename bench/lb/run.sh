#!/usr/bin/env bash
# Load balancing measured, in namespaces: a client VM on h1, three backend
# VMs on h2, and an "amphora" VM on h2 running Debian's haproxy (what
# Octavia's reference driver runs) as the central balancer, all on one
# Canopy network. In the same run:
#   - new TCP connections per second (conn_rate, THREADS connections at a
#     time, each answered with the backend's name and closed) and their
#     latency, to one backend directly, through Canopy's VIP (balanced on
#     the client's host), and through haproxy;
#   - TCP throughput (iperf3, one stream) to one backend directly, through
#     the VIP, and through haproxy.
# Aims (issue 19): the VIP at least 0.9x direct; at least 2x haproxy's new
# connections per second, with lower latency. Needs root.
# Usage: bench/lb/run.sh [seconds per run, default 5] [threads, default 4]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${1:-5}
threads=${2:-4}
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target canopy-server canopy-agent conn_rate -j2 >/dev/null
bin="$root/build/release/bin"
here="$root/tests/e2e"
source "$here/lib.sh"
source "$here/netns.sh"
command -v haproxy >/dev/null || fail "haproxy is not installed (scripts/install-deps.sh)"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --load-balancer
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
subnet=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' | field 'd["subnet"]["id"]')
sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
for port in 80 81 5201; do
  api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id": "'"$sg"'",
    "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
    "port_range_min": '"$port"', "port_range_max": '"$port"'}}' >/dev/null
done
declare -A ip_of
for vm in "client h1" "be1 h2" "be2 h2" "be3 h2" "amphora h2"; do
  set -- $vm
  new_port "$1" "$net"
  ip_of[$1]=$port_ip
  add_vm "$1" "$2" "$port_id" "$port_mac"
done
for vm in client be1 be2 be3 amphora; do dhcp "$vm" >/dev/null; done
limit=$((seconds * 8 + 120))  # every server ends by itself
for be in be1 be2 be3; do
  bg "$tag-$be" timeout "$limit" "$bin/conn_rate" serve 80 "$be"
  wait_listen "$tag-$be" 80
done
# be1 also on 81, for connections straight to it: their 4-tuples then never
# meet those the VIP sends to be1:80 (a client's source port reused within
# be1's TIME_WAIT through another path would be refused by be1's PAWS check,
# through any balancer that keeps the client's port).
bg "$tag-be1" timeout "$limit" "$bin/conn_rate" serve 81 be1
wait_listen "$tag-be1" 81

# haproxy as an amphora runs it: TCP mode, round robin over the members.
cat >"$work/haproxy.cfg" <<EOF
global
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend web
  bind ${ip_of[amphora]}:80
  default_backend members
backend members
  balance roundrobin
  server be1 ${ip_of[be1]}:80
  server be2 ${ip_of[be2]}:80
  server be3 ${ip_of[be3]}:80
frontend bulk
  bind ${ip_of[amphora]}:5201
  default_backend bulk_member
backend bulk_member
  server be1 ${ip_of[be1]}:5201
EOF
bg "$tag-amphora" timeout "$limit" haproxy -db -f "$work/haproxy.cfg"
wait_listen "$tag-amphora" 80

# Canopy's: the same members behind a VIP.
out=$(lb POST /loadbalancers '{"loadbalancer": {"name": "web", "vip_subnet_id": "'"$subnet"'"}}')
lb_id=$(field 'd["loadbalancer"]["id"]' <<<"$out")
vip=$(field 'd["loadbalancer"]["vip_address"]' <<<"$out")
pool_for() {
  local listener
  listener=$(lb POST /listeners '{"listener": {"protocol": "TCP", "protocol_port": '"$1"',
    "loadbalancer_id": "'"$lb_id"'"}}' | field 'd["listener"]["id"]')
  lb POST /pools '{"pool": {"protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
    "listener_id": "'"$listener"'"}}' | field 'd["pool"]["id"]'
}
web=$(pool_for 80)
for be in be1 be2 be3; do
  lb POST "/pools/$web/members" '{"member": {"address": "'"${ip_of[$be]}"'",
    "protocol_port": 80}}' >/dev/null
done
bulk=$(pool_for 5201)
lb POST "/pools/$bulk/members" '{"member": {"address": "'"${ip_of[be1]}"'",
  "protocol_port": 5201}}' >/dev/null
wait_applied h1
wait_applied h2
answers() { in_ns "$tag-client" nc -N -w 2 "$1" 80 </dev/null | grep -q be; }
retry 10 answers "$vip" || fail "the VIP does not answer"
retry 10 answers "${ip_of[amphora]}" || fail "haproxy does not answer"

rate() { in_ns "$tag-client" "$bin/conn_rate" connect "$1" "${2:-80}" "$seconds" "$threads"; }
value() { field "d[\"$1\"]"; }
throughput() {
  bg "$tag-be1" sh -c "exec timeout $((seconds + 20)) iperf3 -s -1 -p 5201 >/dev/null 2>&1"
  sleep 0.5
  in_ns "$tag-client" iperf3 -c "$1" -p 5201 -t "$seconds" -J | python3 -c \
    'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}

direct=$(rate "${ip_of[be1]}" 81)
through_vip=$(rate "$vip")
through_haproxy=$(rate "${ip_of[amphora]}")
echo "direct:  $direct"
echo "VIP:     $through_vip"
echo "haproxy: $through_haproxy"
t_direct=$(throughput "${ip_of[be1]}")
t_vip=$(throughput "$vip")
t_haproxy=$(throughput "${ip_of[amphora]}")

python3 - "$direct" "$through_vip" "$through_haproxy" "$t_direct" "$t_vip" "$t_haproxy" <<'EOF'
import json, sys
d, v, h = (json.loads(x) for x in sys.argv[1:4])
td, tv, th = (float(x) for x in sys.argv[4:7])
print()
print("| path | connections/s | p50 | p99 | failed | TCP Gbit/s |")
print("|---|---:|---:|---:|---:|---:|")
for name, r, t in (("straight to one member", d, td), ("Canopy VIP", v, tv),
                   ("haproxy (amphora)", h, th)):
    print(f"| {name} | {r['per_second']:.0f} | {r['p50_us']/1000:.2f} ms | "
          f"{r['p99_us']/1000:.2f} ms | {r['failed']} | {t:.2f} |")
print()
print(f"VIP / direct: connections {v['per_second']/d['per_second']:.2f}x, "
      f"throughput {tv/td:.2f}x")
print(f"VIP / haproxy: connections {v['per_second']/h['per_second']:.2f}x, "
      f"p50 latency {v['p50_us']/h['p50_us']:.2f}x, throughput {tv/th:.2f}x")
print(f"spread through the VIP: {v['names']}")
EOF
