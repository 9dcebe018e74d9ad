#!/usr/bin/env bash
# OVN as a peer for the southbound fan-out benchmark (fanout_bench): N chassis,
# each with one port on one shared logical switch ls0, so that every change to
# ls0 concerns all of them. Each round times (monotonic clock, ms)
#   ovn-nbctl --wait=hv lsp-add ls0 pR -- lsp-set-addresses pR "MAC IP"
# which returns once every chassis's ovn-controller has applied the change
# (installed its flows and reported the NB_Global nb_cfg back); prints p50,
# p90 and max over the rounds, as fanout_bench does.
#
# Real OVN from Debian (ovn-central, ovn-host, openvswitch-switch; installed
# if missing): NB and SB ovsdb-server and ovn-northd, and per chassis its own
# ovsdb-server (conf.db), ovs-vswitchd and ovn-controller, with br-int
# (datapath_type=netdev) and one type=internal interface whose iface-id is
# that chassis's logical port. Everything lives in a fresh temporary
# directory and talks over unix sockets; all daemons are stopped by the PIDs
# in their pidfiles on exit.
#
# Why a vswitchd per chassis, and a dummy one: ovn-controller reports nb_cfg
# only after its flows are installed over OpenFlow, so without ovs-vswitchd
# --wait=hv never returns (tried). The netdev datapath opens kernel tap
# devices named "ovs-netdev" and "br-int", which a second vswitchd in the
# same network namespace cannot open; with --enable-dummy=override (as
# ovs-sandbox and OVN's scale-test sandboxes run it) ovs-vswitchd keeps
# datapath_type netdev, ofproto and OpenFlow but backs ports (and the tunnel
# ports OVN adds between chassis) with in-memory devices: no kernel device,
# no packets. About 19 MiB (PSS) per chassis, 12 of them vswitchd's.
#
# All chassis share this machine's cores: every round wakes every
# ovn-controller and vswitchd, so with many chassis on few cores the rounds
# are bound by CPU (with 50 on 2 cores, an empty --wait=hv sync takes ~0.1 s).
#
# Usage: bench/southbound/ovn_peer.sh [--chassis 50] [--rounds 30]
set -euo pipefail
chassis=50
rounds=30
while [ $# -gt 0 ]; do
  case $1 in
    --chassis) chassis=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--chassis N] [--rounds N]" >&2; exit 2 ;;
  esac
done

# Where a machine has no policy-rc.d that forbids it, installing may also
# start the packages' own system daemons; this script does not use them.
pkgs=(openvswitch-switch ovn-central ovn-host)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

work=$(mktemp -d -t canopy-ovn-peer.XXXXXX)
rounds_pid=
# A process that has exited (or is a zombie waiting for its reaper).
gone() { [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo Z)" = Z ]; }
# Stop the rounds (their process group: with their ovn-nbctl) and every
# daemon that has a pidfile under $work (and $work on its command line,
# against a reused PID); SIGKILL what is left after 10 s.
cleanup() {
  local f pid pids=()
  if [ -n "$rounds_pid" ]; then
    kill -- "-$rounds_pid" 2>/dev/null || true
    pids+=("$rounds_pid")
  fi
  for f in "$work"/*/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    grep -qaF "$work" "/proc/$pid/cmdline" 2>/dev/null && pids+=("$pid")
  done
  kill "${pids[@]}" 2>/dev/null || true
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do
      gone "$pid" && break
      sleep 0.1
    done
    gone "$pid" || kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds, polling every 0.1 s
wait_for() {
  local deadline=$(($(now_ms) + $1 * 1000)) what=$2
  shift 2
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] ||
      { echo "ovn_peer.sh: timed out waiting for $what" >&2; exit 1; }
    sleep 0.1
  done
}
# daemon DIR NAME ARGS...: start NAME detached, its files in DIR
daemon() {
  local dir=$1 name=$2
  shift 2
  OVS_RUNDIR=$dir OVN_RUNDIR=$dir "$name" -vconsole:off "$@" --pidfile="$dir/$name.pid" \
    --log-file="$dir/$name.log" --detach --no-chdir
}
mac_ip() {  # N: "MAC IP" of the Nth port
  local hi=$(($1 >> 8)) lo=$(($1 & 255))
  printf '0a:00:00:00:%02x:%02x 10.0.%d.%d' "$hi" "$lo" "$hi" "$lo"
}

t0=$(now_ms)
central=$work/central
mkdir -p "$central"
export OVN_NB_DB=unix:$central/nb.sock OVN_SB_DB=unix:$central/sb.sock
for db in nb sb; do
  ovsdb-tool create "$central/$db.db" "/usr/share/ovn/ovn-$db.ovsschema"
  OVS_RUNDIR=$central ovsdb-server -vconsole:off "$central/$db.db" \
    --remote="punix:$central/$db.sock" --unixctl="$central/$db.ctl" \
    --pidfile="$central/$db.pid" --log-file="$central/$db.log" --detach --no-chdir
done
ovn-nbctl --no-wait init
ovn-sbctl init
daemon "$central" ovn-northd --ovnnb-db="$OVN_NB_DB" --ovnsb-db="$OVN_SB_DB"
ovn-nbctl ls-add ls0

for i in $(seq 1 "$chassis"); do
  hv=$work/hv$i
  mkdir -p "$hv"
  ovn-nbctl lsp-add ls0 "hv$i-p" -- lsp-set-addresses "hv$i-p" "$(mac_ip "$i")"
  ovsdb-tool create "$hv/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  daemon "$hv" ovsdb-server "$hv/conf.db" --remote="punix:$hv/db.sock"
  # The SB database wants a distinct encap IP per chassis: loopback ones,
  # which no packet ever goes to (the tunnel ports are dummies).
  ovs-vsctl --db="unix:$hv/db.sock" --no-wait init \
    -- add-br br-int -- set bridge br-int datapath_type=netdev fail-mode=secure \
    other-config:disable-in-band=true \
    -- add-port br-int "hv$i-p" -- set interface "hv$i-p" type=internal \
    "external_ids:iface-id=hv$i-p" \
    -- set open_vswitch . "external_ids:system-id=hv$i" "external_ids:ovn-remote=$OVN_SB_DB" \
    external_ids:ovn-encap-type=geneve "external_ids:ovn-encap-ip=127.1.$((i >> 8)).$((i & 255))" \
    external_ids:ovn-bridge-datapath-type=netdev
  daemon "$hv" ovs-vswitchd --enable-dummy=override --disable-system "unix:$hv/db.sock"
  daemon "$hv" ovn-controller "unix:$hv/db.sock"
done
all_up() {
  [ "$(ovn-nbctl --bare --columns=up find Logical_Switch_Port up=true | grep -c true)" \
    -ge "$chassis" ]
}
wait_for 300 "all $chassis chassis ports up" all_up
ovn-nbctl --timeout=300 --wait=hv sync
setup_ms=$(($(now_ms) - t0))

mem_mib() {  # the daemons' memory: proportional set size (shared pages split), MiB
  local f kib=0
  for f in "$work"/*/*.pid; do
    kib=$((kib + $(awk '/^Pss:/ { print $2 }' "/proc/$(cat "$f")/smaps_rollup")))
  done
  echo $((kib / 1024))
}
echo "ovn_peer: $chassis chassis up in $((setup_ms / 1000)).$((setup_ms % 1000 / 100)) s," \
  "daemons' memory (PSS) $(mem_mib) MiB" >&2

# In the background and a process group of their own, so that a signal to
# this script ends the rounds at once (cleanup).
setsid /usr/bin/python3 - "$chassis" "$rounds" <<'PY' &
import subprocess, sys, time
chassis, rounds = int(sys.argv[1]), int(sys.argv[2])
ms = []
for r in range(1, rounds + 1):
    k = chassis + r  # addresses follow the chassis ports'
    port, addr = f"p{r}", f"0a:00:00:00:{k >> 8:02x}:{k & 255:02x} 10.0.{k >> 8}.{k & 255}"
    begin = time.monotonic()
    subprocess.run(["ovn-nbctl", "--timeout=120", "--wait=hv", "lsp-add", "ls0", port, "--",
                    "lsp-set-addresses", port, addr], check=True)
    ms.append((time.monotonic() - begin) * 1000)
ms.sort()
at = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
print('{"peer": "ovn", "agents": %d, "rounds": %d, "p50_ms": %.1f, "p90_ms": %.1f, "max_ms": %.1f}'
      % (chassis, rounds, at(0.5), at(0.9), ms[-1]))
PY
rounds_pid=$!
wait "$rounds_pid"
rounds_pid=
echo "ovn_peer: daemons' memory (PSS) after the rounds $(mem_mib) MiB" >&2
