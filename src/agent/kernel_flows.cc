#include "agent/kernel_flows.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace canopy::agent {

namespace {

using datapath::conntrack::ConnKey;

// How the fast path delivers to an interface, by its driver as ethtool
// reports it: into a veth's peer (its namespace) with bpf_redirect_peer,
// out of a tap to its reader (the hypervisor) with bpf_redirect; 0 for
// anything else, which the fast path does not serve.
uint8_t deliveryTo(const std::string& interface) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return 0;
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq request{};
  std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  request.ifr_data = reinterpret_cast<char*>(&info);
  uint8_t out = 0;
  if (::ioctl(s, SIOCETHTOOL, &request) == 0) {
    if (std::strcmp(info.driver, "veth") == 0) out = CANOPY_FP_REDIRECT_PEER;
    if (std::strcmp(info.driver, "tun") == 0) out = CANOPY_FP_REDIRECT;
  }
  ::close(s);
  return out;
}

bool sameConnection(const ConnKey& a, const ConnKey& b) { return a == b || a == b.reversed(); }

// A flow without a connection (no port security, stateless groups) goes
// after this many idle ticks (seconds).
constexpr int kIdleTicks = 60;

}  // namespace

fastpath::FlowKey kernelKey(const datapath::pipeline::FlowOffer& o, int ifindex) {
  fastpath::FlowKey k{};
  const auto& f = o.key;
  k.ifindex = static_cast<uint32_t>(ifindex);
  k.vlan = o.from_vlan;
  std::memcpy(k.eth_src, f.eth_src.bytes.data(), 6);
  std::memcpy(k.eth_dst, f.eth_dst.bytes.data(), 6);
  const bool v6 = f.eth_type == datapath::packet::ethertype::kIpv6;
  const size_t length = v6 ? 16 : 4;
  std::memcpy(k.ip_src, f.ip_src.data(), length);
  std::memcpy(k.ip_dst, f.ip_dst.data(), length);
  k.protocol = f.ip_proto;
  k.family = v6 ? 6 : 4;
  if (f.ip_proto == datapath::packet::ipproto::kIcmp ||
      f.ip_proto == datapath::packet::ipproto::kIcmpv6) {
    k.port_src = htons(f.icmp_id);
    k.port_dst = htons(f.tp_src);  // the type
  } else {
    k.port_src = htons(f.tp_src);
    k.port_dst = htons(f.tp_dst);
  }
  return k;
}

fastpath::FlowAction kernelAction(const datapath::pipeline::FlowOffer& o, int ifindex,
                                  uint8_t out) {
  fastpath::FlowAction a{};
  a.ifindex = static_cast<uint32_t>(ifindex);
  a.out = out;
  a.flags = CANOPY_FP_SET_ETH | (o.decrement_ttl ? CANOPY_FP_DECREMENT_TTL : 0);
  a.mtu = o.mtu;
  a.vlan = o.to_vlan;
  std::memcpy(a.eth_src, o.eth_src.bytes.data(), 6);
  std::memcpy(a.eth_dst, o.eth_dst.bytes.data(), 6);
  if (o.nat_ip_src) {
    a.nat |= CANOPY_FP_NAT_IP_SRC;
    std::memcpy(&a.nat_ip_src, o.nat_ip_src->value.b, 4);
  }
  if (o.nat_ip_dst) {
    a.nat |= CANOPY_FP_NAT_IP_DST;
    std::memcpy(&a.nat_ip_dst, o.nat_ip_dst->value.b, 4);
  }
  if (o.nat_port_src) {
    a.nat |= CANOPY_FP_NAT_PORT_SRC;
    a.nat_port_src = htons(*o.nat_port_src);
  }
  if (o.nat_port_dst) {
    a.nat |= CANOPY_FP_NAT_PORT_DST;
    a.nat_port_dst = htons(*o.nat_port_dst);
  }
  return a;
}

KernelFlows::~KernelFlows() {
  flush();
  while (!attached_.empty()) detach(attached_.begin()->first);
}

int KernelFlows::attach(PortIo& io, const std::string& interface) {
  int ifindex = io.interfaceIndex();
  const uint8_t out = ifindex > 0 ? deliveryTo(interface) : 0;
  if (out == 0) return 0;
  if (auto r = fp_.attach(ifindex); !r) {
    spdlog::warn("agent: {}: {}; its flows stay in the agent", interface, r.error().message());
    return 0;
  }
  if (!io.filterWith(fp_.socketFilter())) {
    spdlog::warn("agent: {}: the fast path's socket filter: {}; its flows stay in the agent",
                 interface, std::strerror(errno));
    fp_.detach(ifindex);
    return 0;
  }
  attached_[ifindex] = Attached{.interface = interface, .out = out};
  return ifindex;
}

void KernelFlows::detach(int ifindex) {
  for (auto it = installed_.begin(); it != installed_.end();) {
    auto next = std::next(it);
    if (it->second.from_ifindex == ifindex || it->second.to_ifindex == ifindex) erase(it);
    it = next;
  }
  if (attached_.erase(ifindex) != 0) fp_.detach(ifindex);
}

void KernelFlows::install(std::span<const datapath::pipeline::FlowOffer> offers,
                          const std::function<int(uint32_t port)>& ifindexOf) {
  const bool tunnels = tunnels_.underlay_ifindex > 0 && tunnels_.local.family == 4;
  for (const auto& o : offers) {
    int from = o.from_port != 0 ? ifindexOf(o.from_port) : 0;
    int to = o.to_port != 0 ? ifindexOf(o.to_port) : 0;
    fastpath::FlowKey key{};
    fastpath::FlowAction action{};
    if (from > 0 && to > 0 && attached_.count(from) && attached_.count(to)) {
      key = kernelKey(o, from);
      action = kernelAction(o, to, attached_[to].out);
    } else if (from > 0 && attached_.count(from) && uplink(o.to_uplink) > 0) {
      // Out of an uplink, as the agent sends it.
      to = uplink(o.to_uplink);
      key = kernelKey(o, from);
      action = kernelAction(o, to, CANOPY_FP_REDIRECT);
    } else if (uplink(o.from_uplink) > 0 && to > 0 && attached_.count(to)) {
      // From outside, by the uplink (and VLAN) it came in on.
      from = uplink(o.from_uplink);
      key = kernelKey(o, from);
      action = kernelAction(o, to, attached_[to].out);
    } else if (((from > 0 && attached_.count(from)) || uplink(o.from_uplink) > 0) &&
               o.to_port == 0 && o.to_uplink == 0 && tunnels && o.tunnel_remote.family == 4 &&
               o.tunnel_header_len <= CANOPY_FP_MAX_HEADER) {
      // Into the tunnel, as the agent would send it (from a port, or from
      // outside through an uplink).
      if (from == 0) from = uplink(o.from_uplink);
      key = kernelKey(o, from);
      action = kernelAction(o, 0, CANOPY_FP_ENCAP);
      std::memcpy(&action.tunnel_src, tunnels_.local.bytes.data(), 4);
      std::memcpy(&action.tunnel_dst, o.tunnel_remote.bytes.data(), 4);
      action.udp_src = htons(o.udp_source);
      action.udp_dst = htons(o.vxlan ? tunnels_.vxlan_port : tunnels_.geneve_port);
      action.header_len = o.tunnel_header_len;
      std::memcpy(action.header, o.tunnel_header.data(), o.tunnel_header_len);
      to = tunnels_.underlay_ifindex;
    } else if (o.from_port == 0 && o.from_uplink == 0 && tunnels && o.tunnel_remote.family == 4 &&
               ((to > 0 && attached_.count(to)) || uplink(o.to_uplink) > 0)) {
      // Out of the tunnel, on the underlay: by the sending host and VNI; to
      // a port, or (from a router's gateway here) routed and translated out
      // of an uplink.
      key = kernelKey(o, tunnels_.underlay_ifindex);
      std::memcpy(&key.tunnel_src, o.tunnel_remote.bytes.data(), 4);
      key.vni = o.vni;
      // (Its MACs as it leaves: as it came, unless a router's gateway here
      // routed it.)
      if (to > 0) {
        action = kernelAction(o, to, attached_[to].out);
      } else {
        to = uplink(o.to_uplink);
        action = kernelAction(o, to, CANOPY_FP_REDIRECT);
      }
      from = tunnels_.underlay_ifindex;
    } else {
      continue;
    }
    KeyBytes bytes;
    std::memcpy(bytes.data(), &key, sizeof(key));
    if (installed_.count(bytes) != 0) continue;
    if (auto r = fp_.install(key, action); !r) {
      // A full map: the flow stays in the agent, as it was.
      continue;
    }
    ++installs_;
    installed_[bytes] = Installed{.key = key,
                                  .from_ifindex = from,
                                  .to_ifindex = to,
                                  .from_conn = o.from_conn,
                                  .to_conn = o.to_conn,
                                  .tags = o.tags,
                                  .last_used_ns = 0};
  }
}

void KernelFlows::retract(std::span<const ConnKey> connections) {
  if (connections.empty()) return;
  for (auto it = installed_.begin(); it != installed_.end();) {
    auto next = std::next(it);
    for (const auto& c : connections) {
      if (sameConnection(it->second.from_conn, c) || sameConnection(it->second.to_conn, c)) {
        erase(it);
        break;
      }
    }
    it = next;
  }
}

void KernelFlows::retract(datapath::pipeline::Invalidations invalidated) {
  if (invalidated.all) return flush();
  if (invalidated.tags.empty() || installed_.empty()) return;
  auto& changed = invalidated.tags;
  std::sort(changed.begin(), changed.end());
  for (auto it = installed_.begin(); it != installed_.end();) {
    auto next = std::next(it);
    const auto& tags = it->second.tags;
    // Both sorted: a walk of the two.
    auto a = tags.begin();
    auto b = changed.begin();
    while (a != tags.end() && b != changed.end() && *a != *b) {
      if (*a < *b) {
        ++a;
      } else {
        ++b;
      }
    }
    if (a != tags.end() && b != changed.end()) erase(it);
    it = next;
  }
}

void KernelFlows::flush() {
  while (!installed_.empty()) erase(installed_.begin());
}

void KernelFlows::tick(datapath::conntrack::ConnTrack& conntrack, SteadyTime now) {
  for (auto it = installed_.begin(); it != installed_.end();) {
    auto next = std::next(it);
    auto& f = it->second;
    auto kernel = fp_.find(f.key);
    // (A flow into or out of a tunnel has one local zone.)
    auto touch = [&](const ConnKey& c) { return c.family == 0 || conntrack.touch(c, now); };
    auto alive = [&](const ConnKey& c) { return c.family == 0 || conntrack.find(c).has_value(); };
    if (!kernel) {
      installed_.erase(it);  // gone from the map already
    } else if ((kernel->flags & CANOPY_FP_BROKEN) != 0) {
      erase(it);  // its route failed: the agent's again
    } else if (kernel->last_used_ns != f.last_used_ns) {
      f.last_used_ns = kernel->last_used_ns;
      f.idle_ticks = 0;
      // Both zones' entries: the kernel carried packets neither saw.
      bool live = touch(f.from_conn);
      live = touch(f.to_conn) && live;
      if (!live) erase(it);
    } else if (!alive(f.from_conn) || !alive(f.to_conn)) {
      erase(it);  // idle, and its connection expired
    } else if (f.from_conn.family == 0 && f.to_conn.family == 0 && ++f.idle_ticks >= kIdleTicks) {
      erase(it);  // no connection to outlive: idle long enough
    }
    it = next;
  }
}

void KernelFlows::erase(std::map<KeyBytes, Installed>::iterator it) {
  fp_.remove(it->second.key);
  installed_.erase(it);
}

}  // namespace canopy::agent
