#!/usr/bin/env bash
# QoS on real virtual machines, set with the real `openstack` client at the
# builtin Keystone: vm1 (h1) under a shared policy with bandwidth limits,
# vm2 (h2) without. Checks:
# - iperf3 from vm1 to vm2 runs within 10 % of the egress limit, and from
#   vm2 to vm1 within 10 % of the ingress limit (the receiver's rate, the
#   first two seconds left out: they drain the burst);
# - the limit changed with `openstack network qos rule set` holds at once;
#   the policy taken off the port, vm1 sends faster than any limit was;
# - the DSCP mark of the policy is on what vm1 sends (captured on vm2's
#   tap), with vm2's answers unmarked;
# - h1's agent counts its drops as qos_bandwidth_limit;
# - a bad rule gets Neutron's error (a DSCP mark out of range, a negative
#   rate) and the policy keeps its rules.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
source "$here/guest.sh"
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"
command -v iperf3 >/dev/null || fail "iperf3 is not installed (scripts/install-deps.sh)"
command -v tcpdump >/dev/null || fail "tcpdump is not installed (scripts/install-deps.sh)"

builtin_identity "$work/identity.json"
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth builtin --identity-file "$work/identity.json"
admin_token=$(as admin admin token issue -f value -c id)
make_underlay
for h in 1 2; do add_host "h$h" "192.168.77.$h"; done
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2

as alice demo network create net >/dev/null
as alice demo subnet create --network net --subnet-range 10.0.0.0/24 net-sub >/dev/null
for rule in "--protocol tcp --dst-port 5201" "--protocol icmp"; do
  as alice demo security group rule create $rule default >/dev/null
done

# The operator's policy: 8 Mbit/s out, 5 Mbit/s in (bursts as Neutron's
# default, 80 % of a second), shared so that the project can use it. (Rates
# a TCG guest sustains with other guests beside it.)
egress=8000 ingress=5000
as admin admin network qos policy create --share limited >/dev/null
out=$(as admin admin network qos rule create --type bandwidth-limit --max-kbps $egress \
  --egress limited -f json)
egress_rule=$(field 'd["id"]' <<<"$out")
as admin admin network qos rule create --type bandwidth-limit --max-kbps $ingress --ingress \
  limited >/dev/null
shown=$(as alice demo network qos policy show limited -f json)
[ "$(field 'len(d["rules"])' <<<"$shown")" = 2 ] || fail "the policy's rules: $shown"

declare -A ip_of tap_of
guest() {
  local vm=$1 host=$2 plan=$3 out id mac
  shift 3
  out=$(as alice demo port create --network net "$@" "$vm" -f json)
  id=$(field 'd["id"]' <<<"$out")
  mac=$(field 'd["mac_address"]' <<<"$out")
  ip_of[$vm]=$(field 'd["fixed_ips"][0]["ip_address"]' <<<"$out")
  tap_of[$vm]="tap${id:0:11}"
  as admin admin port set --host "$host" --device-owner compute:nova \
    --device "$(cat /proc/sys/kernel/random/uuid)" "$id"
  make_guest "$vm" "$plan" iperf3
  boot_guest "$vm" "$host" "${tap_of[$vm]}" "$mac"
}
guest vm1 h1 commands --qos-policy limited
guest vm2 h2 "iperf3 -s -D
commands"
for vm in vm1 vm2; do wait_console "$vm" "GUEST-LEASE ip=${ip_of[$vm]}" 180; done
for vm in vm1 vm2; do wait_console "$vm" GUEST-COMMANDS-READY 60; done
[ "$(as alice demo port show vm1 -f value -c qos_policy_id)" != None ] ||
  fail "vm1's port shows no policy"

# rate [-R]: vm1's iperf3 to vm2 (with -R, vm2 sends), 6 s after 2 s left
# out; the receiver's kbit/s.
rate() {
  local out kbps
  out=$(guest_exec vm1 90 "iperf3 -c ${ip_of[vm2]} -t 6 -O 2 -f k $*") ||
    fail "iperf3 $* failed: $out"
  kbps=$(awk '/receiver/ {print int($(NF-2))}' <<<"$out")
  [ -n "$kbps" ] || fail "no iperf3 result: $out"
  echo "$kbps"
}
# within KBPS LIMIT WHAT: KBPS is within 10 % of LIMIT.
within() {
  echo "  $3: $1 kbit/s (limit $2)"
  [ "$1" -ge $(($2 * 90 / 100)) ] && [ "$1" -le $(($2 * 110 / 100)) ] ||
    fail "$3: $1 kbit/s, not within 10 % of $2"
}
within "$(rate)" $egress "vm1 -> vm2 (egress)"
within "$(rate -R)" $ingress "vm2 -> vm1 (ingress)"

# The limit changed live.
as admin admin network qos rule set --max-kbps 12000 limited "$egress_rule"
wait_applied h1
within "$(rate)" 12000 "vm1 -> vm2 after the change"

drops() { "$bin/canopy-agent" --run-dir "$work/h1" status; }
dropped=$(drops | field 'd["datapath"]["drops"].get("qos_bandwidth_limit", 0)')
[ "$dropped" -gt 0 ] || fail "h1 counted no qos_bandwidth_limit drop: $(drops)"
echo "  h1 dropped $dropped frames over the limits"

# A bad rule: Neutron's errors, nothing changed.
bad=$(as admin admin network qos rule create --type dscp-marking --dscp-mark 58 limited 2>&1) &&
  fail "DSCP mark 58 was taken: $bad"
expect_in "58" "$bad"
bad=$(as admin admin network qos rule create --type minimum-bandwidth --min-kbps -5 --egress \
  limited 2>&1) && fail "a negative rate was taken: $bad"
[ "$(as admin admin network qos policy show limited -f json | field 'len(d["rules"])')" = 2 ] ||
  fail "a refused rule changed the policy"

# DSCP: vm1's packets carry AF31 (26), vm2's nothing. vm2 pings vm1: its
# requests leave unmarked, vm1's replies (whose TOS Linux copies from the
# request: 0) marked by vm1's policy.
as admin admin network qos rule create --type dscp-marking --dscp-mark 26 limited >/dev/null
wait_applied h1
in_ns "$tag-h2" timeout 60 tcpdump -i "${tap_of[vm2]}" -nvl -c 6 icmp >"$work/capture" \
  2>"$work/capture.err" &
capture=$!
wait_capture "$work/capture.err"
guest_exec vm2 30 "ping -c 3 -W 2 ${ip_of[vm1]}" >/dev/null || fail "vm2 cannot ping vm1"
wait "$capture" || fail "the capture on vm2's tap ended early: $(cat "$work/capture.err")"
sed 's/^/  captured: /' "$work/capture"
marked=$(grep -c "tos 0x68" "$work/capture" || true)
unmarked=$(grep -c "tos 0x0," "$work/capture" || true)
[ "$marked" = 3 ] && [ "$unmarked" = 3 ] ||
  fail "3 replies marked 0x68 and 3 requests unmarked wanted: $(cat "$work/capture")"
grep -A1 "tos 0x68" "$work/capture" | grep -q "echo request" && fail "vm2's requests were marked"

# The policy off the port: vm1 sends faster than its limits ever were.
as alice demo port unset --qos-policy vm1
wait_applied h1
free=$(rate)
echo "  vm1 -> vm2 without a policy: $free kbit/s"
[ "$free" -gt 18000 ] || fail "without its policy vm1 sends only $free kbit/s"
echo "PASS: QoS limits, live changes and DSCP marking hold between guests"
