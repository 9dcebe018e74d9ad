# Network-namespace worlds for end-to-end tests (source after lib.sh): hosts
# and VMs are namespaces this test creates, joined by an underlay bridge in
# its own namespace; nothing touches the root namespace's links or routes.
# Everything made here is removed on exit, also on failure.

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }

tag="cn$$"  # a prefix unique to this test run

# What an earlier run left because it was killed before its cleanup could
# run (ctest's timeout kills outright): namespaces "cn<PID>-..." whose test
# process is gone, and what still runs in them.
sweep_leftovers() {
  local ns owner pids
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ "$ns" =~ ^cn([0-9]+)- ]] || continue
    owner=${BASH_REMATCH[1]}
    [ "$owner" != "$$" ] && ! kill -0 "$owner" 2>/dev/null || continue
    pids=$(ip netns pids "$ns" 2>/dev/null) || true
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}
sweep_leftovers
namespaces=()
agent_pids=()
agent_names=()
declare -A agent_pid_of agent_args_of

netns_cleanup() {
  local rc=$?
  # A failed test shows what each agent dropped, and why.
  if [ "$rc" -ne 0 ]; then
    for name in $(printf '%s\n' "${agent_names[@]}" | sort -u); do
      "$bin/canopy-agent" --run-dir "$work/$name" status 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
d = s["datapath"]["drops"]
print("agent " + sys.argv[1] + " drops: " + (", ".join(f"{k} {v}" for k, v in sorted(d.items()) if v) or "none"))
if "bfd" in s:
    print("agent " + sys.argv[1] + " bfd: " + ", ".join("host %s %s for %s ms" % (x["host"], x["state"], x["for_ms"]) for x in s["bfd"]["sessions"]) + "; held by " + json.dumps(s.get("gateways_held_by")))
if s.get("fast_path", {}).get("state") == "on":
    print("agent " + sys.argv[1] + " fast path: " + json.dumps(s["fast_path"]))
' "$name" >&2 || true
    done
  fi
  for pid in "${agent_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
  # What still runs in the namespaces this test made was started by it:
  # a server's child serving a connection whose peer is gone would
  # otherwise outlive the namespace (and hold the test's output open).
  local pids
  for ns in "${namespaces[@]}"; do
    pids=$(ip netns pids "$ns" 2>/dev/null) || continue
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
  done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  cleanup
}
trap netns_cleanup EXIT

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# The API of the server start_server started (noauth): api as project
# "demo", admin without a project (which sees binding:host_id).
api() {
  curl -sS -X "$1" "$api_url$2" -H 'X-Project-Id: demo' -H 'Content-Type: application/json' \
    ${3:+-d "$3"}
}
# With the builtin Keystone, admin needs $admin_token (as admin admin token
# issue).
admin() {
  curl -sS -X "$1" "$api_url$2" -H 'Content-Type: application/json' \
    ${admin_token:+-H "X-Auth-Token: $admin_token"} ${3:+-d "$3"}
}
# lb METHOD PATH [JSON]: Octavia's API (--load-balancer) as project "demo",
# below /v2/lbaas.
lb() {
  curl -sS -X "$1" "$api_url/load-balancer/v2/lbaas$2" -H 'X-Project-Id: demo' \
    -H 'Content-Type: application/json' ${3:+-d "$3"}
}
# public_network: makes the external network "public" (flat, on physnet1)
# with 203.0.113.0/24 (gateway .1, addresses .10-.100); prints its id.
public_network() {
  local id
  id=$(admin POST /v2.0/networks '{"network": {"name": "public", "router:external": true,
    "provider:network_type": "flat", "provider:physical_network": "physnet1"}}' |
    field 'd["network"]["id"]')
  admin POST /v2.0/subnets '{"subnet": {"network_id": "'"$id"'", "ip_version": 4,
    "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1", "enable_dhcp": false,
    "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.100"}]}}' >/dev/null
  echo "$id"
}
# routed_network: the external network "public" (public_network), net1
# with 10.0.0.0/24, and router r1 between them (its gateway on public);
# sets $public, $net, $sub and $router.
routed_network() {
  public=$(public_network)
  net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
  sub=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
    "cidr": "10.0.0.0/24"}}' | field 'd["subnet"]["id"]')
  router=$(api POST /v2.0/routers '{"router": {"name": "r1",
    "external_gateway_info": {"network_id": "'"$public"'"}}}' | field 'd["router"]["id"]')
  api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$sub"'"}' >/dev/null
}
# wait_listen NS PORT: waits until something in NS listens on TCP PORT.
wait_listen() {
  local ns=$1 port=$2
  for _ in $(seq 1 100); do
    in_ns "$ns" ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.1
  done
  fail "nothing listens on tcp $port in $ns"
}
# wait_capture FILE: waits until the tcpdump whose stderr goes to FILE captures.
wait_capture() {
  for _ in $(seq 1 100); do
    grep -q "listening on" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "tcpdump did not start: $(cat "$1")"
}
# wait_applied HOST: waits until HOST's agent runs the model as it is now:
# the server has brought the host's view up to the current revision and the
# agent has applied everything it was sent.
wait_applied() {
  local host=$1 revision
  revision=$(admin GET /canopy/v1/status | field 'd["status"]["model_revision"]')
  for _ in $(seq 1 100); do
    admin GET /canopy/v1/status | python3 -c "
import json, sys
agents = [a for a in json.load(sys.stdin)['status']['agents'] if a['host'] == '$host']
ok = agents and agents[0]['connected'] and (agents[0]['considered_revision'] or 0) >= $revision \
    and agents[0]['applied_version'] == agents[0]['latest_version']
sys.exit(0 if ok else 1)" && return 0
    sleep 0.1
  done
  fail "agent $host did not apply the model at revision $revision"
}

new_ns() {
  ip netns add "$1"
  namespaces+=("$1")
  in_ns "$1" ip link set lo up
}

# underlay: a namespace with a bridge that host namespaces plug into.
make_underlay() {
  underlay="$tag-ul"
  new_ns "$underlay"
  in_ns "$underlay" ip link add br0 type bridge
  in_ns "$underlay" ip link set br0 up
}

# add_host NAME ADDRESS: a host namespace with ADDRESS/24 (an IPv6
# ADDRESS: /64, usable at once, kept while the link is down) on the
# underlay.
add_host() {
  local name=$1 address=$2 ns="$tag-$1"
  new_ns "$ns"
  ip link add "$tag$name" type veth peer name ul0 netns "$ns"
  ip link set "$tag$name" netns "$underlay"
  in_ns "$underlay" ip link set "$tag$name" master br0 up
  case "$address" in
    *:*)
      in_ns "$ns" sysctl -qw net.ipv6.conf.ul0.keep_addr_on_down=1
      in_ns "$ns" ip addr add "$address/64" dev ul0 nodad
      ;;
    *) in_ns "$ns" ip addr add "$address/24" dev ul0 ;;
  esac
  in_ns "$ns" ip link set ul0 up
}

# fast_path_on HOST: whether the host's agent runs the kernel fast path.
fast_path_on() {
  [ "$("$bin/canopy-agent" --run-dir "$work/$1" status | field 'd["fast_path"]["state"]')" = on ]
}

# kernel_hits HOST...: the packets these hosts' kernel fast paths carried.
kernel_hits() {
  local n=0 h
  for h in "$@"; do
    n=$((n + $("$bin/canopy-agent" --run-dir "$work/$h" status | field 'd["fast_path"].get("hits", 0)')))
  done
  echo "$n"
}

# bulk_through_vip HOST VM ADDRESS PORT STATS: 4 MiB from VM (on HOST) to
# the VIP's ADDRESS:PORT, echoed back whole by a member on another host.
# With the kernel fast path both ways run in HOST's kernel (the pin's
# translation as its flows' rewrite): it carries more than 100 packets and
# leaves fewer than 50 to the agent (the handshake, the FINs and whatever
# else the host had). The load balancer's or listener's STATS (an Octavia
# path) count all of it in bytes_in, the kernel's share too.
bulk_through_vip() {
  local host=$1 vm=$2 address=$3 port=$4 stats=$5
  bytes_in() { lb GET "$stats" | field 'd["stats"]["bytes_in"]'; }
  local in_before hits left_before
  in_before=$(bytes_in)
  hits=$(kernel_hits "$host")
  left_before=$(kernel_left "$host")
  head -c 4194304 /dev/urandom >"$work/bulk"
  in_ns "$tag-$vm" timeout 30 nc -N -w 10 "$address" "$port" <"$work/bulk" >"$work/bulk.back" ||
    fail "4 MiB through the VIP: the transfer failed"
  # (A member may say its name first.)
  [ "$(tail -c 4194304 "$work/bulk.back" | sha256sum)" = "$(sha256sum <"$work/bulk")" ] ||
    fail "4 MiB through the VIP: $(stat -c %s "$work/bulk.back") bytes came back, not the same"
  if fast_path_on "$host"; then
    carried() { [ $(($(kernel_hits "$host") - hits)) -gt 100 ]; }
    retry 5 carried ||
      fail "$host's kernel carried $(($(kernel_hits "$host") - hits)) packets through the VIP"
    local in_agent=$(($(kernel_left "$host") - left_before))
    [ "$in_agent" -lt 50 ] || fail "$host's kernel left $in_agent packets of the transfer to its agent"
    echo "4 MiB each way through the VIP: $(($(kernel_hits "$host") - hits)) packets in $host's kernel, $in_agent left to its agent"
  fi
  grown() { [ $(($(bytes_in) - in_before)) -ge 4194304 ]; }
  retry 20 grown || fail "bytes_in grew by $(($(bytes_in) - in_before)) for 4 MiB sent"
  echo "bytes_in grew by $(($(bytes_in) - in_before)) for 4 MiB sent"
}

# kernel_left HOST: the packets the host's kernel fast path left to its
# agent (no flow, or the agent's to see), as the kernel counts them now.
kernel_left() {
  "$bin/canopy-agent" --run-dir "$work/$1" status |
    field 'd["fast_path"].get("misses", 0) + d["fast_path"].get("to_agent", 0)'
}

# start_agent HOST ADDRESS [ARGS...]: canopy-agent in the host's namespace,
# with $CANOPY_AGENT_WORKERS datapath workers (default 1), served by
# $agent_server (default: the first server's socket).
start_agent() {
  local name=$1 address=$2 ns="$tag-$1"
  shift 2
  mkdir -p "$work/$name"
  # CANOPY_AGENT_FAST_PATH=off (or on): every agent so (unless the test
  # says otherwise); unset, the agent's default (the kernel fast path).
  local fast=()
  if [ -n "${CANOPY_AGENT_FAST_PATH:-}" ]; then
    case " $* " in *" --fast-path "*) ;; *) fast=(--fast-path "$CANOPY_AGENT_FAST_PATH") ;; esac
  fi
  # Not through a shell function: $! must be the agent itself.
  ip netns exec "$ns" "$bin/canopy-agent" --host-name "$name" --tunnel-ip "$address" \
    --server "${agent_server:-unix:$work/southbound-0.sock}" --run-dir "$work/$name" \
    --workers "${CANOPY_AGENT_WORKERS:-1}" "${fast[@]}" "$@" \
    >>"$work/$name/agent.log" 2>&1 &
  agent_pids+=("$!")
  agent_names+=("$name")
  agent_pid_of[$name]=$!
  agent_args_of[$name]="$address $*"
  for _ in $(seq 1 500); do
    [ -S "$work/$name/agent.sock" ] && return 0
    sleep 0.02
  done
  fail "agent $name did not start: $(cat "$work/$name/agent.log")"
}

# restart_agent NAME SIGNAL: stops host NAME's agent with SIGNAL (KILL,
# TERM) and starts it again with the same arguments and run directory; sets
# $restart_ms to the time from the signal until the new agent serves its
# local API.
restart_agent() {
  local name=$1 signal=$2 pid=${agent_pid_of[$1]} began
  began=$(date +%s%N)
  kill "-$signal" "$pid"
  wait "$pid" 2>/dev/null || true
  rm -f "$work/$name/agent.sock"  # a killed agent leaves it behind
  # shellcheck disable=SC2086  # the saved arguments, split as given
  start_agent "$name" ${agent_args_of[$name]}
  restart_ms=$((($(date +%s%N) - began) / 1000000))
}

# Guests keep the offloads a virtio guest has (TSO, GSO, tx checksum): what
# leaves them are TCP super-frames with partial checksums, which canopy-agent
# carries with their virtio-net header. CANOPY_GUEST_OFFLOADS=off turns tx
# offloads off in every guest, so that frames leave them complete.
guest_offloads() {
  local ns=$1 dev=$2
  if [ "${CANOPY_GUEST_OFFLOADS:-on}" = off ]; then
    in_ns "$ns" ethtool -K "$dev" tx off >/dev/null
  fi
}

# new_port NAME NETWORK [SECURITY_GROUP]: a port made by project "demo",
# kept in $work/NAME.port; sets $port_id, $port_mac and $port_ip.
new_port() {
  api POST /v2.0/ports '{"port": {"network_id": "'"$2"'", "name": "'"$1"'"'"${3:+, \"security_groups\": [\"$3\"]}"'}}' \
    >"$work/$1.port"
  port_id=$(field 'd["port"]["id"]' <"$work/$1.port")
  port_mac=$(field 'd["port"]["mac_address"]' <"$work/$1.port")
  port_ip=$(field 'd["port"]["fixed_ips"][0]["ip_address"]' <"$work/$1.port")
}

# add_vm VM HOST PORT_ID MAC: a VM namespace whose eth0 is one end of a veth
# whose other end (tap + 11 characters of the port id) is in the host's
# namespace, bound to the port through the agent's local API.
add_vm() {
  local vm=$1 host=$2 port=$3 mac=$4 ns="$tag-$1" tap="tap${3:0:11}"
  new_ns "$ns"
  ip link add "$tap" type veth peer name eth0 netns "$ns"
  ip link set "$tap" netns "$tag-$host"
  in_ns "$tag-$host" ip link set "$tap" up
  in_ns "$ns" ip link set eth0 address "$mac"
  guest_offloads "$ns" eth0
  in_ns "$ns" ip link set eth0 up
  "$bin/canopy-agent" --run-dir "$work/$host" bind "$tap" "$port" || fail "bind $tap"
}

# dhcp VM: runs udhcpc in the VM; the lease lands in $work/VM.lease.
dhcp() {  # dhcp VM [INTERFACE, default eth0]
  local vm=$1 dev=${2:-eth0}
  LEASE_FILE="$work/$vm.lease" in_ns "$tag-$vm" busybox udhcpc -i "$dev" -n -q -t 5 -T 1 \
    -s "$here/udhcpc.script" >"$work/$vm.udhcpc.log" 2>&1 ||
    fail "udhcpc in $vm: $(cat "$work/$vm.udhcpc.log")"
  cat "$work/$vm.lease"
}

# external: a namespace with the bridge that hosts' uplinks and the outside
# namespace plug into (the "physical" external network, physnet1).
make_external() {
  external="$tag-ex"
  new_ns "$external"
  in_ns "$external" ip link add br0 type bridge
  in_ns "$external" ip link set br0 up
}

# add_uplink HOST: the host's ext0, plugged into the external bridge.
add_uplink() {
  local name=$1 ns="$tag-$1"
  ip link add "${tag}x$name" type veth peer name ext0 netns "$ns"
  ip link set "${tag}x$name" netns "$external"
  in_ns "$external" ip link set "${tag}x$name" master br0 up
  in_ns "$ns" sysctl -qw net.ipv6.conf.ext0.disable_ipv6=1
  in_ns "$ns" ip link set ext0 up
}

# add_outside ADDRESS/LEN: the outside world, one namespace on the external
# network (the external subnet's gateway, a server to reach).
add_outside() {
  outside="$tag-out"
  new_ns "$outside"
  ip link add "${tag}out" type veth peer name eth0 netns "$outside"
  ip link set "${tag}out" netns "$external"
  in_ns "$external" ip link set "${tag}out" master br0 up
  guest_offloads "$outside" eth0
  in_ns "$outside" ip addr add "$1" dev eth0
  in_ns "$outside" ip link set eth0 up
}

# bg NS COMMAND...: a background process in a namespace, ended on exit.
bg() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@" &
  agent_pids+=("$!")
}

# udp_big FROM_NS TO_NS ADDRESS PORT: a 4000-byte UDP datagram (fragmented
# by the sender's kernel) from FROM_NS to a server in TO_NS at
# ADDRESS:PORT, answered with 4000 bytes (fragmented by the server's):
# fails unless both arrive whole (IPv4 or IPv6, by the address).
udp_big() {
  local from=$1 to=$2 address=$3 port=$4 serve=serve
  case "$address" in *:*) serve=serve6 ;; esac
  in_ns "$to" python3 "$here/udp_big.py" "$serve" "$port" >"$work/udp-$port" 2>&1 &
  local server=$!
  agent_pids+=("$server")
  ready() { in_ns "$to" ss -Hlun "sport = :$1" | grep -q .; }
  retry 10 ready "$port" || fail "no UDP server on $port in $to"
  local got
  got=$(in_ns "$from" python3 "$here/udp_big.py" ask "$address" "$port")
  wait "$server" || true
  [ "$(head -1 "$work/udp-$port")" = 4000 ] ||
    fail "UDP $from -> $address:$port: the server got $(cat "$work/udp-$port")"
  [ "$got" = 4000 ] || fail "UDP $from -> $address:$port: the answer: $got"
}

# send_blob FROM_NS TO_NS ADDRESS PORT [BYTES]: random bytes (4 MiB by
# default) over one TCP connection (nc) from FROM_NS to a listener in TO_NS
# reached at ADDRESS:PORT; fails unless they all arrive unchanged (sha256).
send_blob() {
  local from=$1 to=$2 address=$3 port=$4 bytes=${5:-4194304}
  local blob="$work/blob-$from-$port"
  head -c "$bytes" /dev/urandom >"$blob"
  local family=
  case "$address" in *:*) family=-6 ;; esac
  bg "$to" sh -c "exec nc $family -l -N $port >'$blob.received'"
  wait_listen "$to" "$port"
  in_ns "$from" nc -N -w 10 "$address" "$port" <"$blob" ||
    fail "TCP $from -> $address:$port: the transfer failed"
  local want got
  want=$(sha256sum <"$blob")
  for _ in $(seq 1 50); do
    got=$(sha256sum <"$blob.received")
    [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  fail "TCP $from -> $address:$port: $(stat -c %s "$blob.received") of $bytes bytes arrived, not all unchanged"
}
