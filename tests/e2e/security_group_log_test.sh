#!/usr/bin/env bash
# Security-group logging on real virtual machines, set with the real
# `openstack network log` client at the builtin Keystone: web (h1) is in a
# group "web" that admits TCP 80; the admin logs that group (event ALL);
# client (h2) uses it. Checks, in h1's log file and its agent's status:
# - a connection to port 80 is one ACCEPT record (ingress, web's port, the
#   client's address and the port), however many packets it has;
# - a connection to port 81, refused, is DROP records;
# - a ping flood over the rate (the agent runs with 5 records a second,
#   bursts of 5) is counted as suppressed, and what was written stays within
#   the limit;
# - the log disabled, nothing more is written; the group deleted, its log
#   goes with it.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
source "$here/guest.sh"
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"
openstack network log --help >/dev/null 2>&1 ||
  fail "python3-neutronclient (openstack network log) is not installed (scripts/install-deps.sh)"

builtin_identity "$work/identity.json"
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth builtin --identity-file "$work/identity.json"
admin_token=$(as admin admin token issue -f value -c id)
make_underlay
for h in 1 2; do add_host "h$h" "192.168.77.$h"; done
start_agent h1 192.168.77.1 --security-group-log-rate 5 --security-group-log-burst 5
start_agent h2 192.168.77.2

as alice demo network create net >/dev/null
as alice demo subnet create --network net --subnet-range 10.0.0.0/24 net-sub >/dev/null
as alice demo security group create web >/dev/null
as alice demo security group rule create --protocol tcp --dst-port 80 web >/dev/null
log_id=$(as admin admin network log create --resource-type security_group --resource web \
  --event ALL --enable weblog -f value -c ID)

declare -A ip_of port_of
guest() {
  local vm=$1 host=$2 plan=$3 out mac
  shift 3
  out=$(as alice demo port create --network net "$@" "$vm" -f json)
  port_of[$vm]=$(field 'd["id"]' <<<"$out")
  mac=$(field 'd["mac_address"]' <<<"$out")
  ip_of[$vm]=$(field 'd["fixed_ips"][0]["ip_address"]' <<<"$out")
  as admin admin port set --host "$host" --device-owner compute:nova \
    --device "$(cat /proc/sys/kernel/random/uuid)" "${port_of[$vm]}"
  make_guest "$vm" "$plan"
  boot_guest "$vm" "$host" "tap${port_of[$vm]:0:11}" "$mac"
}
guest web h1 "mkdir -p /www; echo web >/www/index.html; httpd -p 80 -h /www
commands" --security-group web
guest client h2 commands
for vm in web client; do wait_console "$vm" "GUEST-LEASE ip=${ip_of[$vm]}" 180; done
for vm in web client; do wait_console "$vm" GUEST-COMMANDS-READY 60; done

log="$work/h1/security-groups.log"
records() { grep -c "$1" "$log" 2>/dev/null || true; }
status() { "$bin/canopy-agent" --run-dir "$work/h1" status; }

# One connection, one ACCEPT.
out=$(guest_exec client 30 "timeout 10 wget -q -O - http://${ip_of[web]}/")
[ "$out" = web ] || fail "the client did not get the page: $out"
accept="action=ACCEPT direction=ingress port=${port_of[web]} protocol=tcp src=${ip_of[client]}:"
has_accept() { [ "$(records "$accept")" -ge 1 ]; }
retry 20 has_accept || fail "no ACCEPT record: $(cat "$log" 2>/dev/null)"
[ "$(records "dst=${ip_of[web]}:80")" = 1 ] || fail "one connection, not one record: $(cat "$log")"
echo "  $(grep "action=ACCEPT" "$log" | head -1)"

# Refused: DROP records.
guest_exec client 30 "timeout 3 wget -q -O - http://${ip_of[web]}:81/" >/dev/null &&
  fail "port 81 was answered"
has_drop() { [ "$(records "action=DROP direction=ingress port=${port_of[web]} protocol=tcp")" -ge 1 ]; }
retry 20 has_drop || fail "no DROP record for port 81: $(cat "$log")"
echo "  $(grep "action=DROP" "$log" | head -1)"

# A flood over the rate: counted, not written.
before=$(wc -l <"$log")
guest_exec client 60 "ping -c 60 -i 0.05 -W 1 -q ${ip_of[web]}" >/dev/null || true
suppressed() { status | field 'd["datapath"]["security_group_log"]["suppressed"]'; }
many() { [ "$(suppressed)" -ge 30 ]; }
retry 20 many || fail "the flood was not suppressed: $(status | field 'd["datapath"]["security_group_log"]')"
written=$(($(wc -l <"$log") - before))
# 60 pings in about 3 s: at most the burst and 5 a second (with a second's slack).
[ "$written" -le 30 ] || fail "$written records for the flood, over the limit"
echo "  flood: $written written, $(suppressed) suppressed (5/s, bursts of 5)"

# Disabled: nothing more (records are counted as the packets pass).
as admin admin network log set --disable "$log_id"
wait_applied h1
counted() {
  status | field 'd["datapath"]["security_group_log"]["written"] + d["datapath"]["security_group_log"]["suppressed"]'
}
before=$(counted)
guest_exec client 30 "timeout 3 wget -q -O - http://${ip_of[web]}:81/" >/dev/null || true
guest_exec client 30 "timeout 10 wget -q -O - http://${ip_of[web]}/" >/dev/null ||
  fail "web stopped answering"
[ "$(counted)" = "$before" ] || fail "a disabled log recorded: $(tail -3 "$log")"

# The group goes (its port first): its log with it.
as alice demo port delete web
as alice demo security group delete web
bad=$(as admin admin network log show "$log_id" 2>&1) && fail "the log outlived its group: $bad"
echo "PASS: security-group logging records connections and drops, within its rate"
