#include "agent/kernel_flows.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/sockios.h>
#include <linux/udp.h>
#include <net/if.h>
#include <netinet/ip6.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

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

// A connection's key whichever direction it is given in: the smaller of
// the two's bytes.
ConnKey byConnection(const ConnKey& c) {
  ConnKey r = c.reversed();
  return std::memcmp(&c, &r, sizeof(c)) <= 0 ? c : r;
}

// A flow without a connection (no port security, stateless groups) goes
// after this many idle ticks (seconds).
constexpr int kIdleTicks = 60;

// A connection the kernel made whose SYN has had no answer for this long
// is the agent's (conntrack's, as SYN sent) from then on.
constexpr uint64_t kUnansweredNs = 3'000'000'000;

uint64_t monotonicNs() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(t.tv_nsec);
}

// Whether two sorted tag lists share one.
bool intersect(const std::vector<datapath::flowcache::Tag>& a,
               const std::vector<datapath::flowcache::Tag>& b) {
  auto x = a.begin();
  auto y = b.begin();
  while (x != a.end() && y != b.end() && *x != *y) {
    if (*x < *y) {
      ++x;
    } else {
      ++y;
    }
  }
  return x != a.end() && y != b.end();
}

bool sameKey(const fastpath::FlowKey& a, const fastpath::FlowKey& b) {
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

// A template's connection key with the opener's port (host order) put in.
ConnKey withPort(ConnKey c, uint16_t port, bool at_source) {
  if (c.family == 0) return c;
  (at_source ? c.src_port : c.dst_port) = port;
  return c;
}

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

void setTunnelSource(fastpath::FlowKey& key, const IpAddress& sender) {
  std::memcpy(key.tunnel_src, sender.bytes.data(), sender.family == 6 ? 16 : 4);
  key.tunnel_family = sender.family;
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
    std::memcpy(a.nat_ip_src, o.nat_ip_src->bytes.data(), o.nat_ip_src->family == 6 ? 16 : 4);
  }
  if (o.nat_ip_dst) {
    a.nat |= CANOPY_FP_NAT_IP_DST;
    std::memcpy(a.nat_ip_dst, o.nat_ip_dst->bytes.data(), o.nat_ip_dst->family == 6 ? 16 : 4);
  }
  if (o.nat_port_src) {
    a.nat |= CANOPY_FP_NAT_PORT_SRC;
    a.nat_port_src = htons(*o.nat_port_src);
  }
  if (o.nat_port_dst) {
    a.nat |= CANOPY_FP_NAT_PORT_DST;
    a.nat_port_dst = htons(*o.nat_port_dst);
  }
  if (o.snat.family != 0 || o.lb.family != 0) a.flags |= CANOPY_FP_FIN_TO_AGENT;
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
  dropTemplates([&](const Templates::Template& t) {
    for (const auto* side : {&t.forward, &t.reply}) {
      if (side->from_ifindex == ifindex || side->to_ifindex == ifindex) return true;
    }
    return false;
  });
  for (auto it = installed_.begin(); it != installed_.end();) {
    auto next = std::next(it);
    if (it->second.from_ifindex == ifindex || it->second.to_ifindex == ifindex) erase(it);
    it = next;
  }
  if (attached_.erase(ifindex) != 0) fp_.detach(ifindex);
}

bool KernelFlows::kernelFlow(const datapath::pipeline::FlowOffer& o,
                             const std::function<int(uint32_t port)>& ifindexOf, Installed& flow,
                             fastpath::FlowAction& action) {
  // (A tunnel's other end is of the underlay's family, as this host's.)
  const bool tunnels = tunnels_.underlay_ifindex > 0 && tunnels_.local.family != 0;
  const bool underlay6 = tunnels_.local.family == 6;
  int from = o.from_port != 0 ? ifindexOf(o.from_port) : 0;
  int to = o.to_port != 0 ? ifindexOf(o.to_port) : 0;
  fastpath::FlowKey key{};
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
  } else if (((from > 0 && attached_.count(from)) || uplink(o.from_uplink) > 0) && o.to_port == 0 &&
             o.to_uplink == 0 && tunnels && o.tunnel_remote.family == tunnels_.local.family &&
             o.tunnel_header_len <= CANOPY_FP_MAX_HEADER) {
    // Into the tunnel, as the agent would send it (from a port, or from
    // outside through an uplink).
    if (from == 0) from = uplink(o.from_uplink);
    key = kernelKey(o, from);
    action = kernelAction(o, 0, CANOPY_FP_ENCAP);
    const size_t length = underlay6 ? 16 : 4;
    std::memcpy(action.tunnel_src, tunnels_.local.bytes.data(), length);
    std::memcpy(action.tunnel_dst, o.tunnel_remote.bytes.data(), length);
    if (underlay6) action.flags |= CANOPY_FP_TUNNEL_IPV6;
    action.udp_src = htons(o.udp_source);
    action.udp_dst = htons(o.vxlan ? tunnels_.vxlan_port : tunnels_.geneve_port);
    action.header_len = o.tunnel_header_len;
    std::memcpy(action.header, o.tunnel_header.data(), o.tunnel_header_len);
    to = tunnels_.underlay_ifindex;
  } else if (o.from_port == 0 && o.from_uplink == 0 && tunnels &&
             o.tunnel_remote.family == tunnels_.local.family &&
             ((to > 0 && attached_.count(to)) || uplink(o.to_uplink) > 0)) {
    // Out of the tunnel, on the underlay: by the sending host and VNI; to
    // a port, or (from a router's gateway here) routed and translated out
    // of an uplink.
    key = kernelKey(o, tunnels_.underlay_ifindex);
    setTunnelSource(key, o.tunnel_remote);
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
    return false;
  }
  flow = Installed{.key = key,
                   .from_ifindex = from,
                   .to_ifindex = to,
                   .from_conn = o.from_conn,
                   .to_conn = o.to_conn,
                   .tags = o.tags,
                   .last_used_ns = 0,
                   .snat = o.snat,
                   .lb = o.lb,
                   .lb_reply = o.lb_reply,
                   .lb_member = o.lb_member,
                   .lb_selector = o.lb_selector,
                   .local_ip = o.local_ip};
  if (o.lb.family != 0 && o.snat.family == 0 && lb_close_ != nullptr) {
    // A pinned connection's FINs are carried and told (events): its pin
    // closes then (finished()).
    action.flags &= static_cast<uint8_t>(~CANOPY_FP_FIN_TO_AGENT);
  }
  if (o.lb.family != 0) {
    // (What the kernel counts of each packet beyond its IP packet: its
    // Ethernet header, and into a tunnel the room made for the outer
    // headers before it is counted.)
    flow.overhead = ETH_HLEN;
    if (action.out == CANOPY_FP_ENCAP) {
      flow.overhead += static_cast<uint32_t>((underlay6 ? sizeof(ip6_hdr) : sizeof(iphdr)) +
                                             sizeof(udphdr) + action.header_len + ETH_HLEN);
    }
  }
  return true;
}

void KernelFlows::install(std::span<const datapath::pipeline::FlowOffer> offers,
                          const std::function<int(uint32_t port)>& ifindexOf) {
  // (The opening flow of a handshake, kept for its answer's, which follows.)
  std::optional<std::pair<Installed, fastpath::FlowAction>> opening;
  for (const auto& o : offers) {
    Installed flow;
    fastpath::FlowAction action{};
    if (!kernelFlow(o, ifindexOf, flow, action)) {
      opening.reset();
      continue;
    }
    if (opening && o.early && !o.opening) learn(opening->first, opening->second, flow, action);
    opening.reset();
    if (o.opening) opening.emplace(flow, action);
    KeyBytes bytes;
    std::memcpy(bytes.data(), &flow.key, sizeof(flow.key));
    if (installed_.count(bytes) != 0) continue;
    if (auto r = fp_.install(flow.key, action); !r) {
      // A full map: the flow stays in the agent, as it was.
      continue;
    }
    ++installs_;
    remember(std::move(flow));
  }
}

void KernelFlows::retract(std::span<const ConnKey> connections) {
  for (const auto& c : connections) {
    auto at = by_connection_.find(byConnection(c));
    if (at == by_connection_.end()) continue;
    const std::vector<KeyBytes> flows = at->second;  // (erase() changes it)
    for (const auto& b : flows) {
      if (auto it = installed_.find(b); it != installed_.end()) erase(it);
    }
  }
}

void KernelFlows::retract(datapath::pipeline::Invalidations invalidated) {
  if (invalidated.all) return flush();
  if (invalidated.tags.empty()) return;
  auto& changed = invalidated.tags;
  std::sort(changed.begin(), changed.end());
  // (Templates first: no connection is made from one while its flows go.
  // A template outlives its connections: it goes even with no flow left.)
  dropTemplates([&](const Templates::Template& t) {
    return intersect(t.forward.tags, changed) || intersect(t.reply.tags, changed);
  });
  for (auto it = installed_.begin(); it != installed_.end();) {
    auto next = std::next(it);
    if (intersect(it->second.tags, changed)) erase(it);
    it = next;
  }
}

void KernelFlows::flush() {
  dropTemplates([](const Templates::Template&) { return true; });
  while (!installed_.empty()) erase(installed_.begin());
}

void KernelFlows::tick(datapath::conntrack::ConnTrack& conntrack, SteadyTime now) {
  adoptMade();
  for (auto it = installed_.begin(); it != installed_.end();) {
    auto next = std::next(it);
    auto& f = it->second;
    auto kernel = fp_.find(f.key);
    // (A flow into or out of a tunnel has one local zone.)
    auto touch = [&](const ConnKey& c) { return c.family == 0 || conntrack.touch(c, now); };
    auto alive = [&](const ConnKey& c) { return c.family == 0 || conntrack.find(c).has_value(); };
    // (Its SNAT mapping or local IP's translation, if any: moved on by the
    // kernel's use; gone, the flow goes, before its translation could be
    // another connection's.)
    auto mapped = [&](bool used) {
      auto keep = [&](const ConnKey& c, const KeepAlive& keep_alive) {
        return c.family == 0 || keep_alive == nullptr || keep_alive(c, used);
      };
      const bool snat = keep(f.snat, snat_keep_alive_);
      return keep(f.local_ip, local_ip_keep_alive_) && snat;
    };
    // (Its load balancer's pin, if any: the same.)
    auto pinned = [&](bool used) { return !kernel || keepPin(f, *kernel, used); };
    if (!kernel) {
      forget(it);  // gone from the map already
    } else if ((kernel->flags & CANOPY_FP_BROKEN) != 0) {
      erase(it);  // its route failed: the agent's again
    } else if (kernel->last_used_ns != f.last_used_ns) {
      f.last_used_ns = kernel->last_used_ns;
      f.idle_ticks = 0;
      // Both zones' entries: the kernel carried packets neither saw.
      bool live = touch(f.from_conn);
      live = touch(f.to_conn) && live;
      live = mapped(true) && live;
      live = pinned(true) && live;
      if (!live) erase(it);
    } else if (!alive(f.from_conn) || !alive(f.to_conn) || !mapped(false) || !pinned(false)) {
      erase(it);  // idle, and its connection (or mapping) expired
    } else if (f.from_conn.family == 0 && f.to_conn.family == 0 && ++f.idle_ticks >= kIdleTicks) {
      erase(it);  // no connection to outlive: idle long enough
    }
    it = next;
  }
}

bool KernelFlows::keepPin(Installed& f, const fastpath::FlowAction& kernel, bool used) {
  if (f.lb.family == 0 || lb_keep_alive_ == nullptr) return true;
  // The bytes the kernel carried since the last look, counted for the
  // listener as the datapath counts its own: IP packets.
  const uint64_t packets = kernel.packets - f.packets, bytes = kernel.bytes - f.bytes;
  f.packets = kernel.packets;
  f.bytes = kernel.bytes;
  const uint64_t carried = bytes > packets * f.overhead ? bytes - packets * f.overhead : 0;
  return lb_keep_alive_(f.lb, used, f.lb_reply ? 0 : carried, f.lb_reply ? carried : 0);
}

void KernelFlows::erase(std::map<KeyBytes, Installed>::iterator it) {
  // (A load-balanced flow's last bytes counted first: it may go between
  // ticks, its connection closed.)
  if (it->second.lb.family != 0) {
    if (auto kernel = fp_.find(it->second.key)) keepPin(it->second, *kernel, false);
  }
  if (batching_) {
    removals_.push_back(it->second.key);
  } else {
    fp_.remove(it->second.key);
  }
  forget(it);
}

void KernelFlows::remember(Installed flow) {
  KeyBytes b = bytes(flow.key);
  for (const auto& c : {flow.from_conn, flow.to_conn}) {
    if (c.family != 0) by_connection_[byConnection(c)].push_back(b);
  }
  installed_[b] = std::move(flow);
}

void KernelFlows::forget(std::map<KeyBytes, Installed>::iterator it) {
  for (const auto& c : {it->second.from_conn, it->second.to_conn}) {
    if (c.family == 0) continue;
    auto at = by_connection_.find(byConnection(c));
    if (at == by_connection_.end()) continue;
    std::erase(at->second, it->first);
    if (at->second.empty()) by_connection_.erase(at);
  }
  installed_.erase(it);
}

// --- connections set up in the kernel ---

Templates::KeyBytes Templates::bytes(const fastpath::FlowKey& key) {
  KeyBytes b;
  std::memcpy(b.data(), &key, sizeof(key));
  return b;
}

Templates::Ptr Templates::add(Template t) {
  MutexLock lock(mu_);
  auto forward = bytes(t.forward.key);
  if (by_forward_.count(forward) != 0) return nullptr;
  t.id = next_id_++;
  if (next_id_ == 0) next_id_ = 1;
  auto p = std::make_shared<const Template>(std::move(t));
  by_forward_[forward] = p;
  if (p->lb_table == 0) by_reply_[bytes(p->reply.key)] = p;
  by_id_[p->id] = p;
  size_.store(by_id_.size(), std::memory_order_relaxed);
  return p;
}

void Templates::erase(uint32_t id) {
  MutexLock lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  by_forward_.erase(bytes(it->second->forward.key));
  if (auto r = by_reply_.find(bytes(it->second->reply.key));
      r != by_reply_.end() && r->second == it->second) {
    by_reply_.erase(r);
  }
  by_id_.erase(it);
  size_.store(by_id_.size(), std::memory_order_relaxed);
}

uint32_t Templates::lbTable(const datapath::pipeline::LbSelector& selector,
                            fastpath::FastPath& fp) {
  MutexLock lock(mu_);
  auto& entry = lb_tables_[selector.listener];
  if (entry.id != 0 && entry.members == selector.members &&
      entry.source_only == selector.source_only) {
    return entry.id;
  }
  if (entry.id == 0) entry.id = next_lb_table_++;
  auto table = std::make_unique<fastpath::LbTable>();  // (8 KiB)
  table->size = static_cast<uint32_t>(selector.members.size());
  table->source_only = selector.source_only ? 1 : 0;
  std::fill(std::begin(table->members), std::end(table->members), CANOPY_FP_LB_NONE);
  std::copy(selector.members.begin(), selector.members.end(), table->members);
  if (selector.members.size() > CANOPY_FP_LB_TABLE_MAX || !fp.installLbTable(entry.id, *table)) {
    lb_tables_.erase(selector.listener);
    return 0;
  }
  entry.members = selector.members;
  entry.source_only = selector.source_only;
  return entry.id;
}

Templates::Ptr Templates::byId(uint32_t id) const {
  MutexLock lock(mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

Templates::Ptr Templates::matching(const fastpath::FlowKey& key) const {
  fastpath::FlowKey forward = key;
  forward.port_src = 0;
  fastpath::FlowKey reply = key;
  reply.port_dst = 0;
  MutexLock lock(mu_);
  if (auto it = by_forward_.find(bytes(forward)); it != by_forward_.end()) return it->second;
  if (auto it = by_reply_.find(bytes(reply)); it != by_reply_.end()) return it->second;
  return nullptr;
}

void Templates::setWorkers(size_t n) {
  MutexLock lock(mu_);
  workers_.store(n, std::memory_order_relaxed);
  mailboxes_.assign(n, {});
}

void Templates::hand(size_t from, const fastpath::FlowKey& key) {
  MutexLock lock(mu_);
  for (size_t w = 0; w < mailboxes_.size(); ++w) {
    // (Bounded: a worker that does not take them loses the oldest.)
    if (w != from && mailboxes_[w].size() < 65536) mailboxes_[w].push_back(key);
  }
  handings_.fetch_add(1, std::memory_order_release);
}

std::vector<fastpath::FlowKey> Templates::handed(size_t worker) {
  MutexLock lock(mu_);
  if (worker >= mailboxes_.size()) return {};
  return std::exchange(mailboxes_[worker], {});
}

std::vector<Templates::Ptr> Templates::ownedBy(size_t owner) const {
  MutexLock lock(mu_);
  std::vector<Ptr> mine;
  for (const auto& [id, t] : by_id_) {
    if (t->owner == owner) mine.push_back(t);
  }
  return mine;
}

size_t KernelFlows::templates() const {
  return templates_ == nullptr ? 0 : templates_->ownedBy(worker_).size();
}

void KernelFlows::learn(const Installed& forward, const fastpath::FlowAction& forward_action,
                        const Installed& reply, const fastpath::FlowAction& reply_action) {
  if (templates_ == nullptr || conntrack_ == nullptr || !setups_) return;
  const auto& f = forward.key;
  const auto& r = reply.key;
  // TCP between two ports (or a port and a tunnel), nothing translated, no
  // VLAN; the answer the opener's reverse; both tracked where they are
  // ports' (the template's connections are imported into their zones).
  auto isUplink = [&](int ifindex) {
    return std::find(uplinks_.begin(), uplinks_.end(), ifindex) != uplinks_.end();
  };
  // A VIP's connection: the client's way to the member its listener's
  // Maglev table chose, translated to it; the member's answer from the VIP
  // again. Its template is that member's, under the VIP's selector.
  const bool lb = forward.lb.family != 0 && forward.lb_member != 0 &&
                  forward.lb_selector != nullptr && reply.lb_reply && lb_import_ != nullptr;
  const bool translated =
      lb ? forward_action.nat == (CANOPY_FP_NAT_IP_DST | CANOPY_FP_NAT_PORT_DST) &&
               reply_action.nat == (CANOPY_FP_NAT_IP_SRC | CANOPY_FP_NAT_PORT_SRC) &&
               std::memcmp(r.ip_src, forward_action.nat_ip_dst, 16) == 0 &&
               r.port_src == forward_action.nat_port_dst &&
               std::memcmp(reply_action.nat_ip_src, f.ip_dst, 16) == 0 &&
               reply_action.nat_port_src == f.port_dst
         : forward_action.nat == 0 && reply_action.nat == 0 &&
               std::memcmp(f.ip_dst, r.ip_src, 16) == 0 && f.port_dst == r.port_src;
  if (f.protocol != IPPROTO_TCP || r.protocol != IPPROTO_TCP || f.vlan != 0 || r.vlan != 0 ||
      !translated || forward_action.vlan != 0 || reply_action.vlan != 0 ||
      isUplink(forward.from_ifindex) || isUplink(forward.to_ifindex) ||
      isUplink(reply.from_ifindex) || isUplink(reply.to_ifindex) || f.port_src != r.port_dst ||
      std::memcmp(f.ip_src, r.ip_dst, 16) != 0) {
    return;
  }
  if (forward.from_conn.family == 0 && forward.to_conn.family == 0) return;  // untracked
  const uint16_t opener = ntohs(f.port_src);
  Templates::Template t;
  t.owner = worker_;
  auto side = [&](const Installed& flow, bool forward_way) {
    Templates::Side s;
    s.key = flow.key;
    (forward_way ? s.key.port_src : s.key.port_dst) = 0;
    s.from_ifindex = flow.from_ifindex;
    s.to_ifindex = flow.to_ifindex;
    // (The opener's port where it stands: src in the forward way's tuples,
    // dst in the reply's; checked, not assumed.)
    auto open = [&](ConnKey c) {
      if (c.family == 0) return c;
      uint16_t& port = forward_way ? c.src_port : c.dst_port;
      if (port != opener) c.family = 0xff;  // (not as expected: no template)
      port = 0;
      return c;
    };
    s.from_conn = open(flow.from_conn);
    s.to_conn = open(flow.to_conn);
    s.tags = flow.tags;
    s.overhead = flow.overhead;
    return s;
  };
  t.forward = side(forward, true);
  t.reply = side(reply, false);
  if (lb) {
    t.forward.key.lb_member = forward.lb_member;
    t.lb = forward.lb;
    if (t.lb.src_port != opener) return;
    t.lb.src_port = 0;
    t.member.address.family = f.family;
    std::memcpy(t.member.address.bytes.data(), forward_action.nat_ip_dst, 16);
    t.member.port = ntohs(forward_action.nat_port_dst);
    t.listener = forward.lb_selector->listener;
  }
  for (const auto* c :
       {&t.forward.from_conn, &t.forward.to_conn, &t.reply.from_conn, &t.reply.to_conn}) {
    if (c->family == 0xff) return;
  }
  auto added = templates_->add(std::move(t));
  if (added == nullptr) return;  // one already
  fastpath::Template kernel{};
  kernel.forward = forward_action;
  kernel.reply_key = reply.key;
  kernel.reply = reply_action;
  kernel.id = added->id;
  for (auto* a : {&kernel.forward, &kernel.reply}) {
    a->packets = a->bytes = a->last_used_ns = 0;
    if (a->out == CANOPY_FP_ENCAP) a->flags |= CANOPY_FP_HASH_PORT;
  }
  if (!fp_.installTemplate(added->forward.key, kernel)) {
    templates_->erase(added->id);
    return;
  }
  if (lb) learnSelector(forward);
}

void KernelFlows::learnSelector(const Installed& forward) {
  // The VIP's selector at the client's opener key, if it has none yet; it
  // goes with the VIP's decisions (their tags).
  Templates::Template s;
  s.owner = worker_;
  s.forward.key = forward.key;
  s.forward.key.port_src = 0;
  s.forward.tags = forward.tags;
  s.lb_table = templates_->lbTable(*forward.lb_selector, fp_);
  if (s.lb_table == 0) return;
  auto added = templates_->add(std::move(s));
  if (added == nullptr) return;  // one already
  fastpath::Template kernel{};
  kernel.id = added->id;
  kernel.lb_table = added->lb_table;
  if (!fp_.installTemplate(added->forward.key, kernel)) templates_->erase(added->id);
}

void KernelFlows::adopt(const fastpath::FlowKey& key, const fastpath::FlowAction& action, bool keep,
                        bool known_answered) {
  auto t = templates_ != nullptr ? templates_->byId(action.template_id) : nullptr;
  if (t == nullptr) {
    fp_.remove(key);  // its template gone (and its connections imported)
    return;
  }
  fastpath::FlowKey probe = key;
  probe.port_src = 0;
  probe.lb_member = t->forward.key.lb_member;  // (a member's template's)
  const bool forward_way = sameKey(probe, t->forward.key);
  probe = key;
  probe.port_dst = 0;
  if (!forward_way && !sameKey(probe, t->reply.key)) return;
  const uint16_t port = forward_way ? key.port_src : key.port_dst;  // network order
  fastpath::FlowKey forward = t->forward.key;
  forward.port_src = port;
  forward.lb_member = 0;
  fastpath::FlowKey reply = t->reply.key;
  reply.port_dst = port;
  bool answered = known_answered;
  if (!answered) {
    auto answer = forward_way ? fp_.find(reply) : std::optional<fastpath::FlowAction>(action);
    answered = answer && answer->packets > 0;
  }
  const SteadyTime now = clock_ != nullptr ? clock_->now() : SteadyTime{};
  const uint16_t opener = ntohs(port);
  if (conntrack_ != nullptr) {
    for (const auto& c : {t->forward.from_conn, t->forward.to_conn}) {
      conntrack_->import(withPort(c, opener, true), answered, now);
    }
  }
  // A VIP's connection: pinned to its member, as if the datapath had
  // balanced its SYN (else its packets are the agent's from now on).
  const ConnKey pin = t->lb.family != 0 ? withPort(t->lb, opener, true) : ConnKey{};
  if (pin.family != 0 && (lb_import_ == nullptr || !lb_import_(pin, t->member, t->listener))) {
    keep = false;
  }
  if (!keep) {
    fp_.remove(forward);
    fp_.remove(reply);
    for (const auto& k : {forward, reply}) {
      if (auto it = installed_.find(bytes(k)); it != installed_.end()) forget(it);
    }
    return;
  }
  auto record = [&](const fastpath::FlowKey& k, const Templates::Side& side, bool at_source) {
    KeyBytes b = bytes(k);
    if (installed_.count(b) != 0) return;
    remember(Installed{.key = k,
                       .from_ifindex = side.from_ifindex,
                       .to_ifindex = side.to_ifindex,
                       .from_conn = withPort(side.from_conn, opener, at_source),
                       .to_conn = withPort(side.to_conn, opener, at_source),
                       .tags = side.tags,
                       .last_used_ns = 0,
                       .lb = pin,
                       .lb_reply = pin.family != 0 && !at_source,
                       .overhead = side.overhead});
  };
  record(forward, t->forward, true);
  record(reply, t->reply, false);
}

void KernelFlows::dropTemplates(const std::function<bool(const Templates::Template&)>& gone) {
  if (templates_ == nullptr || templates_->empty()) return;
  std::vector<uint32_t> dropped;
  for (const auto& t : templates_->ownedBy(worker_)) {
    if (!gone(*t)) continue;
    fp_.removeTemplate(t->forward.key);
    dropped.push_back(t->id);
  }
  if (dropped.empty()) return;
  std::sort(dropped.begin(), dropped.end());
  // Their connections into conntrack (as they would be, had the agent seen
  // them open), then out of the kernel: their packets are the agent's now.
  std::vector<std::pair<fastpath::FlowKey, fastpath::FlowAction>> made;
  fp_.forEachFlow([&](const fastpath::FlowKey& k, const fastpath::FlowAction& a) {
    if ((a.flags & CANOPY_FP_MADE) != 0 &&
        std::binary_search(dropped.begin(), dropped.end(), a.template_id)) {
      made.emplace_back(k, a);
    }
  });
  for (const auto& [k, a] : made) adopt(k, a, /*keep=*/false);
  for (uint32_t id : dropped) templates_->erase(id);
}

void KernelFlows::adoptMade(bool leaving) {
  if (templates_ == nullptr || conntrack_ == nullptr || templates_->empty()) return;
  auto mine = templates_->ownedBy(worker_);
  if (mine.empty()) return;
  std::vector<uint32_t> ids;
  for (const auto& t : mine) ids.push_back(t->id);
  std::sort(ids.begin(), ids.end());
  const uint64_t now_ns = monotonicNs();
  std::vector<std::pair<fastpath::FlowKey, fastpath::FlowAction>> made;
  fp_.forEachFlow([&](const fastpath::FlowKey& k, const fastpath::FlowAction& a) {
    if ((a.flags & CANOPY_FP_MADE) != 0 &&
        std::binary_search(ids.begin(), ids.end(), a.template_id) &&
        installed_.count(bytes(k)) == 0) {
      made.emplace_back(k, a);
    }
  });
  for (const auto& [k, a] : made) {
    auto t = templates_->byId(a.template_id);
    if (t == nullptr) continue;
    fastpath::FlowKey probe = k;
    probe.port_src = 0;
    probe.lb_member = t->forward.key.lb_member;
    if (!sameKey(probe, t->forward.key)) continue;  // (the reply: with its opener's)
    fastpath::FlowKey reply = t->reply.key;
    reply.port_dst = k.port_src;
    auto answer = fp_.find(reply);
    if ((answer && answer->packets > 0) || leaving) {
      adopt(k, a, /*keep=*/true);
    } else if (now_ns > a.last_used_ns + kUnansweredNs) {
      adopt(k, a, /*keep=*/false);
    }
  }
}

void KernelFlows::takeEvents() {
  batching_ = true;
  fp_.takeEvents([&](const fastpath::Event& e) { finished(e.key); });
  batching_ = false;
  if (!removals_.empty()) fp_.remove(std::span<const fastpath::FlowKey>(removals_));
  removals_.clear();
}

void KernelFlows::takeHanded() {
  if (templates_ == nullptr || templates_->handings() == handings_seen_) return;
  handings_seen_ = templates_->handings();
  batching_ = true;
  for (const auto& key : templates_->handed(worker_)) finished(key, /*handed=*/true);
  batching_ = false;
  if (!removals_.empty()) fp_.remove(std::span<const fastpath::FlowKey>(removals_));
  removals_.clear();
}

void KernelFlows::finished(const fastpath::FlowKey& key, bool handed) {
  if (conntrack_ == nullptr) return;
  auto it = installed_.find(bytes(key));
  if (it == installed_.end() && handed) return;  // (another worker's)
  if (it == installed_.end()) {
    // A connection the kernel made, not adopted yet: now. One another
    // worker installed: its packets are the agent's from now on (which
    // sees the other side's FIN).
    auto a = fp_.find(key);
    // (A FIN: its connection was answered.)
    if (a && (a->flags & CANOPY_FP_MADE) != 0) adopt(key, *a, /*keep=*/true, /*answered=*/true);
    it = installed_.find(bytes(key));
    if (it == installed_.end()) {
      // Another worker's flow: its FIN is handed to it (the worker that
      // installed it knows its connection). With one worker, a flow this
      // one does not know: its packets are the agent's from now on.
      if (templates_ != nullptr && templates_->workers() > 1) {
        templates_->hand(worker_, key);
      } else if (a) {
        fp_.remove(key);
      }
      return;
    }
  }
  const SteadyTime now = clock_ != nullptr ? clock_->now() : SteadyTime{};
  const ConnKey from = it->second.from_conn, to = it->second.to_conn;
  bool tracked = false, closing = true;
  for (const auto& c : {from, to}) {
    if (c.family == 0) continue;
    tracked = true;
    closing = conntrack_->finished(c, now) && closing;
  }
  // A load balancer's: its pin closes (least connections no longer counts it).
  if (it->second.lb.family != 0 && lb_close_ != nullptr) lb_close_(it->second.lb);
  // Both sides have sent FIN: its flows go, as when the agent sees it.
  if (tracked && closing) {
    const ConnKey& c = from.family != 0 ? from : to;
    retract(std::span(&c, 1));
  }
}

void KernelFlows::adoptFor(std::span<const uint8_t> frame, int ifindex, const IpAddress& tunnel_src,
                           uint32_t vni) {
  if (templates_ == nullptr || templates_->empty() || ifindex <= 0) return;
  datapath::packet::ParsedPacket p;
  if (datapath::packet::parse(frame, p) != datapath::DropReason::None ||
      p.key.ip_proto != datapath::packet::ipproto::kTcp ||
      (p.key.tcp_flags & datapath::packet::TcpHeader::kSyn) != 0) {
    return;
  }
  datapath::pipeline::FlowOffer o;
  o.key = p.key;
  fastpath::FlowKey key = kernelKey(o, ifindex);
  if (tunnel_src.family != 0) {
    setTunnelSource(key, tunnel_src);
    key.vni = vni;
  }
  if (installed_.count(bytes(key)) != 0 || templates_->matching(key) == nullptr) return;
  auto a = fp_.find(key);
  if (a && (a->flags & CANOPY_FP_MADE) != 0) adopt(key, *a, /*keep=*/true);
}

}  // namespace canopy::agent
