#!/usr/bin/env bash
# Installs every Debian package that Canopy's build, tests, benchmarks and demo need.
# Idempotent and non-interactive: packages already present are left alone, and
# apt-get runs only when something is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  # toolchain and build
  build-essential g++ cmake ninja-build ccache pkg-config git
  clang libclang-rt-14-dev clang-format clang-tidy
  # libraries
  libsqlite3-dev sqlite3 libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libboost-dev
  libyaml-cpp-dev
  # the kernel fast path: eBPF programs built with clang, embedded by bpftool's skeleton,
  # loaded by libbpf
  libbpf-dev bpftool
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libssl-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev python3 curl python3-openstackclient python3-octaviaclient python3-neutronclient
  python3-keystone
  # compatibility: tempest's Neutron suites against Keystone (tests/compat)
  tempest neutron-tempest-plugin subunit postgresql python3-psycopg2 uwsgi uwsgi-plugin-python3
  # Horizon driven by headless Chromium (tests/e2e/horizon_test.sh)
  openstack-dashboard chromium chromium-driver python3-selenium
  # end-to-end worlds: namespaces and the guests' tools
  iproute2 iputils-ping busybox ethtool tcpdump iperf3 netcat-openbsd nftables socat
  # the central balancer bench/lb/run.sh measures Canopy's load balancing against
  haproxy
  # IPv6 guests: a DHCPv6 client and a router-solicitation tool (rdisc6)
  isc-dhcp-client ndisc6
  # guests sharing a virtual IP by VRRP (allowed address pairs)
  keepalived
  # the clustered control plane (--store etcd://...): etcd's server and client, and its
  # .proto files, from which the store's etcd client is generated at build time
  etcd-server etcd-client golang-etcd-server-dev
  # an FTP server for the conntrack helpers (tests/e2e/conntrack_helper_test.sh)
  python3-pyftpdlib
  # QEMU guests (tests/e2e/guest.sh): TCG, Debian's cloud kernel, a busybox initramfs
  qemu-system-x86 linux-image-cloud-amd64 cpio
  # OpenStack compute on Canopy (tests/nova): Nova with libvirt, Placement,
  # Glance, RabbitMQ
  nova-api nova-conductor nova-scheduler nova-compute nova-compute-qemu placement-api glance-api
  rabbitmq-server libvirt-daemon-system libvirt-clients python3-glanceclient
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The services these packages bring (RabbitMQ, libvirtd...) are started by
# the tests that need them, never at install time.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
