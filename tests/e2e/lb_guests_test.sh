#!/usr/bin/env bash
# A load balancer in front of real virtual machines, made with the real
# `openstack loadbalancer` client at the builtin Keystone. Three QEMU guests
# (be1 on h1, be2 on h2, be3 on h1) run busybox httpd answering their own
# name and a UDP service saying it; client guests c1 (on h3, where no backend
# is) and c2 (on h2) use them through the VIP. h3 also holds the router's
# gateway, with an outside client for the VIP's floating IP. Checks:
# - HTTP requests spread by weight (1:2:3) within a stated tolerance;
# - SOURCE_IP persistence keeps each client on one backend;
# - an HTTP health monitor marks a stopped backend ERROR (and the load
#   balancer DEGRADED) within its window, after which no request fails or
#   reaches it; restarted, it is ONLINE again and takes requests;
# - a UDP listener answers every request, from several backends;
# - the VIP's floating IP serves a client outside.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
source "$here/guest.sh"
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"
openstack loadbalancer --help >/dev/null 2>&1 ||
  fail "python3-octaviaclient is not installed (scripts/install-deps.sh)"
command -v socat >/dev/null || fail "socat is not installed (scripts/install-deps.sh)"

builtin_identity "$work/identity.json"
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth builtin --identity-file "$work/identity.json" --load-balancer
make_underlay
make_external
for h in 1 2 3; do add_host "h$h" "192.168.77.$h"; done
add_uplink h3
add_outside 203.0.113.1/24
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2
start_agent h3 192.168.77.3 --uplink physnet1=ext0 --gateway

as admin admin network create public --external --provider-network-type flat \
  --provider-physical-network physnet1 >/dev/null
as admin admin subnet create --network public --subnet-range 203.0.113.0/24 \
  --gateway 203.0.113.1 --no-dhcp --allocation-pool start=203.0.113.10,end=203.0.113.100 \
  public-sub >/dev/null
as alice demo network create web >/dev/null
as alice demo subnet create --network web --subnet-range 10.0.0.0/24 web-sub >/dev/null
as alice demo router create r1 >/dev/null
as alice demo router set --external-gateway public r1
as alice demo router add subnet r1 web-sub
for rule in "--protocol tcp --dst-port 80" "--protocol udp --dst-port 53" "--protocol icmp"; do
  as alice demo security group rule create $rule default >/dev/null
done

# Each VM's port, bound to its host as Nova binds it, and its guest.
declare -A ip_of
guest() {
  local vm=$1 host=$2 plan=$3 out id mac
  out=$(as alice demo port create --network web "$vm" -f json)
  id=$(field 'd["id"]' <<<"$out")
  mac=$(field 'd["mac_address"]' <<<"$out")
  ip_of[$vm]=$(field 'd["fixed_ips"][0]["ip_address"]' <<<"$out")
  as admin admin port set --host "$host" --device-owner compute:nova \
    --device "$(cat /proc/sys/kernel/random/uuid)" "$id"
  make_guest "$vm" "$plan" socat
  boot_guest "$vm" "$host" "tap${id:0:11}" "$mac"
}
serve() {
  echo "mkdir -p /www; echo $1 >/www/index.html; httpd -p 80 -h /www
socat -lf /dev/null UDP4-RECVFROM:53,fork SYSTEM:'echo $1' &
commands"
}
guest be1 h1 "$(serve be1)"
guest be2 h2 "$(serve be2)"
guest be3 h1 "$(serve be3)"
guest c1 h3 commands
guest c2 h2 commands
for vm in be1 be2 be3 c1 c2; do wait_console "$vm" "GUEST-LEASE ip=${ip_of[$vm]}" 180; done
for vm in be1 be2 be3 c1 c2; do wait_console "$vm" GUEST-COMMANDS-READY 60; done

# The load balancer, by the user's client.
out=$(as alice demo loadbalancer create --name lb1 --vip-subnet-id web-sub --wait -f json)
vip=$(field 'd["vip_address"]' <<<"$out")
vip_port=$(field 'd["vip_port_id"]' <<<"$out")
as alice demo loadbalancer listener create --name http --protocol HTTP --protocol-port 80 lb1 \
  --wait >/dev/null
as alice demo loadbalancer pool create --name web --listener http --protocol HTTP \
  --lb-algorithm ROUND_ROBIN --wait >/dev/null
weight=(0 1 2 3)
for i in 1 2 3; do
  as alice demo loadbalancer member create --name "be$i" --address "${ip_of[be$i]}" \
    --protocol-port 80 --subnet-id web-sub --weight "${weight[$i]}" web --wait >/dev/null
done
delay=2 timeout=1 down_after=2
as alice demo loadbalancer healthmonitor create --name check --type HTTP --url-path / \
  --expected-codes 200 --delay $delay --timeout $timeout --max-retries 2 \
  --max-retries-down $down_after web --wait >/dev/null
as alice demo loadbalancer listener create --name sticky --protocol TCP --protocol-port 8080 \
  lb1 --wait >/dev/null
as alice demo loadbalancer pool create --name sticky --listener sticky --protocol TCP \
  --lb-algorithm ROUND_ROBIN --session-persistence type=SOURCE_IP --wait >/dev/null
as alice demo loadbalancer listener create --name dns --protocol UDP --protocol-port 53 lb1 \
  --wait >/dev/null
as alice demo loadbalancer pool create --name dns --listener dns --protocol UDP \
  --lb-algorithm ROUND_ROBIN --wait >/dev/null
for i in 1 2 3; do
  as alice demo loadbalancer member create --address "${ip_of[be$i]}" --protocol-port 80 \
    --subnet-id web-sub sticky --wait >/dev/null
  as alice demo loadbalancer member create --address "${ip_of[be$i]}" --protocol-port 53 \
    --subnet-id web-sub dns --wait >/dev/null
done
member_status() { as alice demo loadbalancer member show web "$1" -f value -c operating_status; }
online() { [ "$(member_status "$1")" = ONLINE ]; }
for i in 1 2 3; do retry 30 online "be$i" || fail "be$i is $(member_status "be$i"), not ONLINE"; done

# requests CLIENT COUNT URL: the guest's wget COUNT times, one connection
# each; prints "N NAME" per backend that answered (FAILED for a failure).
requests() {
  guest_exec "$1" 300 "for i in \$(seq $2); do timeout 10 wget -q -O - $3 || echo FAILED; done |
    sort | uniq -c" | awk '{print $1, $2}' || fail "$1: wget failed to run"
}
count_of() { awk -v n="$1" '$2 == n {print $1}' <<<"$2" | grep . || echo 0; }

# Spread by weight: 600 connections from c1. Tolerance: each backend's share
# within 7 points of its weight's (over 4 standard deviations of the
# binomial at 600; Maglev's own deviation is under 1 %).
total=600
out=$(requests c1 $total "http://$vip/")
echo "$out" | sed 's/^/  c1 -> VIP:80: /'
[ "$(count_of FAILED "$out")" = 0 ] || fail "requests failed: $out"
for i in 1 2 3; do
  got=$(count_of "be$i" "$out")
  want=$((total * weight[i] / 6))
  [ $((got > want ? got - want : want - got)) -le $((total * 7 / 100)) ] ||
    fail "be$i answered $got of $total, weight ${weight[i]}/6 wants $want: $out"
done

# SOURCE_IP persistence: each client stays on one backend.
for c in c1 c2; do
  out=$(requests "$c" 40 "http://$vip:8080/")
  echo "  $c -> VIP:8080 (SOURCE_IP): $out"
  [ "$(wc -l <<<"$out")" = 1 ] && [ "$(cut -d' ' -f1 <<<"$out")" = 40 ] &&
    [ "$(count_of FAILED "$out")" = 0 ] || fail "$c moved between backends: $out"
done

# UDP: every request answered, by more than one backend. As a DNS client
# does, a request unanswered within 2 s is sent again (a new socket), up
# to three times: datagrams may be lost on a loaded machine. Ten at a time.
ask_udp="for t in 1 2 3; do a=\$(echo q | socat -t 2 - UDP4:$vip:53) && [ -n \"\$a\" ] &&
  echo \"\$a\" && break; done"
out=$(guest_exec c2 120 "(for b in 1 2 3 4; do for i in \$(seq 10); do ($ask_udp) & done; wait;
  done) | sort | uniq -c" | awk '{print $1, $2}')
echo "$out" | sed 's/^/  c2 -> VIP:53 (UDP): /'
[ "$(awk '{n += $1} END {print n}' <<<"$out")" = 40 ] || fail "UDP requests unanswered: $out"
[ "$(wc -l <<<"$out")" -ge 2 ] || fail "one backend answered all UDP requests: $out"

# The floating IP of the VIP, from outside.
fip=$(as alice demo floating ip create public --port "$vip_port" -f value -c floating_ip_address)
outside_get() { in_ns "$outside" curl -sS -m 5 "http://$fip/"; }
retry 30 outside_get || fail "the VIP's floating IP $fip does not answer from outside"
seen=$(for _ in $(seq 30); do outside_get; done | sort -u | tr '\n' ' ')
echo "  outside -> $fip: $seen"
[ "$(wc -w <<<"$seen")" -ge 2 ] || fail "one backend answered all outside requests: $seen"

# be3 stops serving: ERROR within the monitor's window, the load balancer
# DEGRADED; then no request fails or reaches it.
guest_exec be3 30 'kill $(pidof httpd)' >/dev/null
stopped=$SECONDS
window=$((delay * down_after + timeout))
error() { [ "$(member_status be3)" = ERROR ]; }
retry $((window + 10)) error || fail "be3 is $(member_status be3) after it stopped serving"
echo "  be3 ERROR $((SECONDS - stopped)) s after it stopped (window ${window} s + reporting)"
[ "$(as alice demo loadbalancer show lb1 -f value -c operating_status)" = DEGRADED ] ||
  fail "lb1 is not DEGRADED with be3 down"
out=$(requests c1 200 "http://$vip/")
echo "$out" | sed 's/^/  c1 -> VIP:80 with be3 down: /'
[ "$(count_of FAILED "$out")" = 0 ] && [ "$(count_of be3 "$out")" = 0 ] ||
  fail "with be3 down: $out"

# Restarted, it comes back ONLINE and takes requests again.
guest_exec be3 30 'httpd -p 80 -h /www' >/dev/null
retry 30 online be3 || fail "be3 is $(member_status be3) after it came back"
[ "$(as alice demo loadbalancer show lb1 -f value -c operating_status)" = ONLINE ] ||
  fail "lb1 is not ONLINE with every member up"
out=$(requests c1 100 "http://$vip/")
[ "$(count_of FAILED "$out")" = 0 ] && [ "$(count_of be3 "$out")" -gt 0 ] ||
  fail "be3 takes no requests after it came back: $out"
echo "e2e.lb_guests: all checks passed"
