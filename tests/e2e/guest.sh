# QEMU guests for end-to-end tests (source after netns.sh): Debian's cloud
# kernel and a busybox initramfs built here, booted under TCG (no KVM
# needed), with a virtio-net NIC on a tap that the hypervisor side (this
# script, as nova-compute would) creates in a host's namespace. The guest
# loads the virtio modules, takes its address by DHCP (udhcpc), then runs
# its plan (shell lines given to make_guest) and prints what happened on its
# serial console, which the test reads.
#
#   make_guest vm1 'ping -c 3 10.0.0.7 && echo PING-OK'   # $work/vm1.cpio.gz
#   boot_guest vm1 h1 "$tap" "$mac"                       # QEMU in h1's namespace
#   wait_console vm1 PING-OK 60
#
# A plan that ends with `commands` keeps the guest taking shell lines from
# the host, on its second serial port, for as long as the test needs it:
#
#   make_guest vm1 commands
#   out=$(guest_exec vm1 30 'wget -q -O - http://10.0.0.7/')

guest_kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)
[ -n "$guest_kernel" ] && command -v qemu-system-x86_64 >/dev/null ||
  { echo "SKIP: needs qemu-system-x86 and linux-image-cloud-amd64"; exit 77; }
guest_modules=/lib/modules/${guest_kernel#/boot/vmlinuz-}

# make_guest NAME PLAN [PROGRAM...]: the initramfs $work/NAME.cpio.gz, with
# busybox and the programs named (iperf3...) and their libraries, and the
# kernel modules of $guest_extra_modules (in load order: "llc stp garp mrp
# 8021q" for VLAN interfaces) after virtio's.
make_guest() {
  local name=$1 plan=$2 root="$work/$1.root" program lib
  shift 2
  mkdir -p "$root"/{bin,sbin,lib,lib64,proc,sys,dev,tmp,etc,modules}
  for program in /bin/busybox "$@"; do
    program=$(command -v "$program")
    cp "$program" "$root/bin/"
    # Its libraries, where its loader looks for them.
    for lib in $(ldd "$program" | grep -o '/[^ ]*'); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
  : >"$root/modules/order"
  for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover \
    net_failover virtio_net ${guest_extra_modules:-}; do
    f=$(find "$guest_modules" -name "$m.ko*" | head -1)
    [ -n "$f" ] || continue  # built into the kernel
    echo "$m" >>"$root/modules/order"
    case "$f" in
      *.ko.xz) xz -dc "$f" >"$root/modules/$m.ko" ;;
      *.ko.zst) zstd -qdc "$f" >"$root/modules/$m.ko" ;;
      *) cp "$f" "$root/modules/$m.ko" ;;
    esac
  done
  cat >"$root/udhcpc.script" <<'SCRIPT'
#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    net=
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    for r in $staticroutes; do  # option 121: "net/len gateway" pairs
      if [ -z "$net" ]; then net=$r; continue; fi
      if [ "$r" = 0.0.0.0 ]; then ip route replace "$net" dev "$interface"
      else ip route replace "$net" via "$r" dev "$interface"; fi
      net=
    done
    echo "GUEST-LEASE ip=$ip router=$router mtu=$mtu hostname=$hostname" ;;
esac
exit 0
SCRIPT
  printf '%s\n' "$plan" >"$root/plan.sh"
  # Runs each line "N COMMAND" the host sends on ttyS1, one at a time, its
  # output between markers on the console.
  cat >"$root/bin/commands" <<'SCRIPT'
#!/bin/sh
stty -F /dev/ttyS1 raw -echo || exit 1
echo GUEST-COMMANDS-READY
while read -r n command; do
  echo "GUEST-CMD-BEGIN $n"
  sh -c "$command" </dev/null 2>&1
  echo "GUEST-CMD-END $n $?"
done </dev/ttyS1
SCRIPT
  cat >"$root/init" <<'SCRIPT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do
  [ -f /modules/$m.ko ] && insmod /modules/$m.ko
done
ip link set lo up
ip link set eth0 up
echo "GUEST-UP $(cat /sys/class/net/eth0/address)"
udhcpc -i eth0 -n -q -t 20 -T 1 -s /udhcpc.script || echo GUEST-NO-LEASE
sh /plan.sh
echo GUEST-PLAN-DONE
poweroff -f
SCRIPT
  chmod +x "$root/init" "$root/udhcpc.script" "$root/bin/busybox" "$root/bin/commands"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/$name.cpio.gz"
}

# boot_guest NAME HOST TAP MAC: creates TAP in HOST's namespace on the
# port's own bridge (as Nova's os-vif and libvirt do for binding:vif_type
# bridge) and boots the guest on it in the background. Its second serial
# port reads from the FIFO $work/NAME.cmd.in (guest_exec).
boot_guest() {
  local name=$1 host=$2 tap=$3 mac=$4 bridge="cbr${3#tap}"
  in_ns "$tag-$host" ip link add "$bridge" type bridge 2>/dev/null || true
  in_ns "$tag-$host" ip link set "$bridge" up
  in_ns "$tag-$host" ip tuntap add dev "$tap" mode tap vnet_hdr
  in_ns "$tag-$host" ip link set "$tap" master "$bridge" up
  rm -f "$work/$name.cmd.in" "$work/$name.cmd.out"
  mkfifo "$work/$name.cmd.in" "$work/$name.cmd.out"
  bg "$tag-$host" qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 192 -nodefaults \
    -no-reboot -display none -kernel "$guest_kernel" -initrd "$work/$name.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet" -serial "file:$work/$name.console" \
    -chardev "pipe,id=commands,path=$work/$name.cmd" -serial chardev:commands \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=n0,mac=$mac"
}

# wait_console NAME TEXT SECONDS: waits until the guest's console shows TEXT.
wait_console() {
  local name=$1 text=$2 end=$((SECONDS + $3))
  until grep -qF -- "$text" "$work/$name.console" 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "$name: no '$text' on its console: $(tail -20 "$work/$name.console" 2>/dev/null)"
    sleep 0.2
  done
}

# guest_exec NAME SECONDS COMMAND: runs COMMAND (shell, its lines joined
# into one) in a guest whose plan ran `commands`; prints its output and
# returns its status. Fails the test when it has not finished within SECONDS.
guest_exec() {
  local name=$1 seconds=$2 command=${3//$'\n'/ } n out
  n=$(($(cat "$work/$name.commands" 2>/dev/null || echo 0) + 1))
  echo "$n" >"$work/$name.commands"
  wait_console "$name" GUEST-COMMANDS-READY "$seconds"
  # QEMU holds the FIFO open for reading; a QEMU gone must not hang the test.
  printf '%s %s\n' "$n" "$command" | timeout 10 tee "$work/$name.cmd.in" >/dev/null ||
    fail "$name: its command channel is closed"
  wait_console "$name" "GUEST-CMD-END $n " "$seconds"
  out=$(tr -d '\r' <"$work/$name.console" | sed -n "/^GUEST-CMD-BEGIN $n\$/,/^GUEST-CMD-END $n /p")
  sed '1d;$d' <<<"$out"
  return "$(tail -1 <<<"$out" | cut -d' ' -f3)"
}
