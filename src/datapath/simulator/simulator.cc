#include "datapath/simulator/simulator.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "datapath/nat/maglev.h"
#include "datapath/packet/builder.h"
#include "datapath/packet/dhcp.h"
#include "datapath/packet/dhcpv6.h"
#include "datapath/simulator/replies.h"

namespace canopy::datapath::simulator {
namespace {

using conntrack::CtState;
using packet::FlowKey;
using topology::Direction;
using topology::Port;
using topology::Router;
using topology::RouterInterface;
using topology::Rule;
using topology::SecurityGroup;
using topology::Switch;
namespace ethertype = packet::ethertype;
namespace ipproto = packet::ipproto;

constexpr int kMaxRouterHops = 8;
const IpAddress kAllNodes{6, {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
const MacAddress kAllNodesMac{{0x33, 0x33, 0, 0, 0, 1}};

bool isIp(const FlowKey& k) {
  return k.eth_type == ethertype::kIpv4 || k.eth_type == ethertype::kIpv6;
}

IpAddress addressOf(const FlowKey& k, const std::array<uint8_t, 16>& bytes) {
  IpAddress ip;
  if (k.eth_type == ethertype::kIpv6) {
    ip.family = 6;
    ip.bytes = bytes;
  } else {
    ip.family = 4;
    std::copy_n(bytes.begin(), 4, ip.bytes.begin());
  }
  return ip;
}

Ipv4Address toV4(const IpAddress& ip) { return Ipv4Address::of(ip); }

std::string named(const std::string& name, const std::string& id) {
  return name.empty() ? id : name + " (" + id + ")";
}

std::string protocolName(uint8_t proto) {
  switch (proto) {
    case ipproto::kTcp:
      return "tcp";
    case ipproto::kUdp:
      return "udp";
    case ipproto::kIcmp:
      return "icmp";
    case ipproto::kIcmpv6:
      return "ipv6-icmp";
    default:
      return "protocol " + std::to_string(proto);
  }
}

bool hasPorts(uint8_t proto) {
  return proto == ipproto::kTcp || proto == ipproto::kUdp || proto == 132;  // SCTP
}

std::string ruleText(const Rule& r, const topology::Topology& t) {
  std::string s = r.direction == Direction::Ingress ? "ingress" : "egress";
  s += r.family == 6 ? " IPv6" : " IPv4";
  s += r.protocol ? " " + protocolName(*r.protocol) : " any protocol";
  if (r.protocol && hasPorts(*r.protocol) && r.port_min) {
    s += " port " + std::to_string(*r.port_min);
    if (r.port_max && *r.port_max != *r.port_min) s += "-" + std::to_string(*r.port_max);
  } else if (r.port_min) {
    s += " type " + std::to_string(*r.port_min);
    if (r.port_max) s += " code " + std::to_string(*r.port_max);
  }
  const char* way = r.direction == Direction::Ingress ? " from " : " to ";
  if (r.remote_prefix) s += way + r.remote_prefix->toString();
  if (r.remote_group) {
    const SecurityGroup* g = t.findGroup(*r.remote_group);
    s += std::string(way) + "group " + (g != nullptr ? named(g->name, g->id) : "?");
  }
  return s;
}

std::string flowText(const FlowKey& k) {
  IpAddress src = addressOf(k, k.ip_src), dst = addressOf(k, k.ip_dst);
  std::string s = protocolName(k.ip_proto) + " " + src.toString();
  if (hasPorts(k.ip_proto)) s += ":" + std::to_string(k.tp_src);
  s += " -> " + dst.toString();
  if (hasPorts(k.ip_proto)) s += ":" + std::to_string(k.tp_dst);
  if (k.ip_proto == ipproto::kIcmp || k.ip_proto == ipproto::kIcmpv6) {
    s += " type " + std::to_string(k.tp_src) + " code " + std::to_string(k.tp_dst);
  }
  return s;
}

std::string ctText(CtState s, bool reply) {
  switch (s) {
    case CtState::New:
      return "new connection";
    case CtState::Established:
      return reply ? "reply of an established connection" : "established connection";
    case CtState::Related:
      return "related to a connection (ICMP error)";
    case CtState::Invalid:
      return "invalid for conntrack";
    case CtState::Untracked:
      return "untracked";
  }
  return "?";
}

// One simulation: the packet's working key, the decision being built, the
// tags and the trace.
class Walk {
 public:
  Walk(const topology::Topology& t, const HostContext& host, const Neighbors& neighbors,
       const Context& ctx, std::span<const uint8_t> frame, const packet::ParsedPacket& parsed,
       Trace* trace)
      : t_(t),
        host_(host),
        neighbors_(neighbors),
        ctx_(ctx),
        frame_(frame),
        parsed_(parsed),
        key_(parsed.key),
        trace_(trace) {}

  Simulation run() {
    switch (ctx_.stage) {
      case Stage::FromPort:
        fromPort();
        break;
      case Stage::FromUplink:
        fromUplink();
        break;
      case Stage::ToPort:
        toPort();
        break;
      case Stage::ToGateway:
        toGateway();
        break;
      case Stage::FromMetadata:
        fromMetadata();
        break;
      case Stage::FromSnatLease:
        fromSnatLease();
        break;
    }
    std::sort(tags_.begin(), tags_.end());
    tags_.erase(std::unique(tags_.begin(), tags_.end()), tags_.end());
    if (trace_ != nullptr) trace_->push_back("verdict: " + verdict());
    return {std::move(d_), std::move(tags_)};
  }

 private:
  // --- bookkeeping ---

  void tag(TagKind kind, uint64_t key) { tags_.push_back(tagOf(kind, key)); }
  template <typename F>
  void note(F&& line) {
    if (trace_ != nullptr) trace_->push_back(line());
  }
  void drop(DropReason why) {
    d_.drop = why;
    note([&] { return std::string("drop: ") + std::string(dropReasonText(why)); });
  }
  void noCache() { d_.cacheable = false; }
  Action& act(ActionKind kind) { return d_.actions.emplace_back(Action{.kind = kind}); }
  void emit(std::vector<uint8_t> frame) {
    noCache();
    act(ActionKind::Emit).frame = std::move(frame);
  }

  std::string verdict() const {
    if (d_.drop != DropReason::None) {
      return "dropped (" + std::string(dropReasonName(d_.drop)) + ")";
    }
    int delivered = 0, answered = 0;
    for (const auto& a : d_.actions) {
      if (a.kind == ActionKind::Emit) ++answered;
      if (a.kind == ActionKind::Deliver || a.kind == ActionKind::Output ||
          a.kind == ActionKind::Tunnel || a.kind == ActionKind::Uplink) {
        ++delivered;
      }
    }
    if (delivered > 1) return "forwarded to " + std::to_string(delivered) + " destinations";
    if (delivered == 1) return "forwarded";
    if (answered > 0) return "answered";
    return "consumed";
  }

  std::string portText(const Port& p) const { return "port " + named(p.name, p.id); }
  std::string switchText(const Switch& s) const { return "network " + named(s.name, s.id); }
  std::string routerText(const Router& r) const { return "router " + named(r.name, r.id); }
  std::string hostText(uint32_t key) const {
    const topology::Host* h = t_.findHost(key);
    return h == nullptr ? "host " + std::to_string(key)
                        : "host " + h->name + " (" + h->tunnel_ip.toString() + ")";
  }

  IpAddress src() const { return addressOf(key_, key_.ip_src); }
  IpAddress dst() const { return addressOf(key_, key_.ip_dst); }
  bool isDhcpRequest() const {
    return key_.eth_type == ethertype::kIpv4 && key_.ip_proto == ipproto::kUdp &&
           key_.tp_src == packet::dhcp::kClientPort && key_.tp_dst == packet::dhcp::kServerPort;
  }
  bool isDhcpv6Request() const {
    return key_.eth_type == ethertype::kIpv6 && key_.ip_proto == ipproto::kUdp &&
           key_.tp_src == packet::dhcpv6::kClientPort && key_.tp_dst == packet::dhcpv6::kServerPort;
  }
  // A DHCP server's message (v4 or v6), which no port with port security sends.
  bool isDhcpServerMessage() const {
    if (key_.ip_proto != ipproto::kUdp) return false;
    if (key_.eth_type == ethertype::kIpv4) {
      return key_.tp_src == packet::dhcp::kServerPort && key_.tp_dst == packet::dhcp::kClientPort;
    }
    return key_.tp_src == packet::dhcpv6::kServerPort && key_.tp_dst == packet::dhcpv6::kClientPort;
  }
  bool isIcmpv6(uint16_t type) const {
    return key_.eth_type == ethertype::kIpv6 && key_.ip_proto == ipproto::kIcmpv6 &&
           key_.tp_src == type;
  }
  // Router and neighbour solicitations and advertisements, redirects.
  bool isNeighborDiscovery() const {
    return key_.eth_type == ethertype::kIpv6 && key_.ip_proto == ipproto::kIcmpv6 &&
           key_.tp_src >= 133 && key_.tp_src <= 137;
  }

  // --- stages ---

  void fromPort() {
    const Port* p = t_.findPort(ctx_.key);
    tag(TagKind::Port, ctx_.key);
    if (p == nullptr || p->host != host_.host) return drop(DropReason::UnknownPort);
    const Switch* sw = t_.findSwitch(p->switch_key);
    tag(TagKind::Switch, p->switch_key);
    note([&] { return "ingress: " + portText(*p) + " on " + switchText(*sw); });
    if (!p->admin_up) return drop(DropReason::PortDown);
    if ((key_.vlan_tci & 0x0fff) != 0) {
      // A guest's VLAN reaches nothing but a trunk's subport's network
      // (the datapath hands a subport's frames to its stage untagged): a
      // tag on a plain port would leave with its frame. (Priority tags,
      // VLAN 0, are 802.1p's and pass.)
      const bool trunk = !p->subports.empty();
      note([&] {
        return "VLAN " + std::to_string(key_.vlan_tci & 0x0fff) +
               (trunk ? " tag: no subport of the trunk has it" : " tag: not a trunk");
      });
      return drop(trunk ? DropReason::TrunkVlanUnknown : DropReason::PortNotTrunk);
    }
    if (p->qos.egress) police(*p, *p->qos.egress, /*sending=*/true);
    if (p->qos.dscp && isIp(key_)) {
      note([&] { return "QoS: DSCP " + std::to_string(*p->qos.dscp) + " marked"; });
      act(ActionKind::SetDscp).dscp = *p->qos.dscp;
    }
    if (p->port_security && !portSecurity(*p)) return;
    if (key_.eth_type == ethertype::kArp) return arpFromPort(*sw, *p);
    if (isNeighborDiscovery() && key_.ip_ttl != 255) {
      // RFC 4861 6.1, 7.1: not from a neighbour on the link.
      return drop(DropReason::NdBadHopLimit);
    }
    if (isNeighborSolicitation() && ndFromPort(*sw, *p)) return;
    if (isRouterSolicitation() && routerSolicitation(*sw)) return;
    if (isDhcpRequest() && dhcpServer(*sw, *p)) return;
    if (isDhcpv6Request() && dhcpv6Server(*sw, *p)) return;
    if (isMetadataRequest()) return toMetadata(*p);
    if (p->port_security && isIp(key_) && !securityGroups(*p, Direction::Egress)) return;
    // Remote-group rules match the sender's groups, which vouch for its
    // source address only when port security holds it to its own (a port
    // without it may forward for others: matched by address, as Neutron).
    if (p->port_security) {
      sender_ = Sender{true, p->groups};
      std::sort(sender_.groups.begin(), sender_.groups.end());
    }
    if (key_.eth_type == ethertype::kIpv4) {
      if (localIpClient(*sw, *p)) return;
      localIpServer(*p);
    }
    if (isIp(key_) && !key_.eth_dst.isMulticast()) {
      if (auto balanced = balance(*sw, key_.eth_dst)) {
        if (*balanced) toMember(*sw);
        return;
      }
    }
    switchFrame(*sw, p->key);
  }

  // --- port forwarding ---

  // To a floating IP's forwarded port, on the router's gateway host: the
  // destination becomes the forwarding's address and port (stateless; the
  // VM's host turns the replies back, forwardOut). False when it forwards
  // nothing of this protocol and port (dropped).
  bool forwardIn(const topology::FloatingIp& f) {
    const bool l4 = key_.ip_proto == 6 || key_.ip_proto == 17;
    const topology::PortForwarding* hit = nullptr;
    for (const auto& pf : f.forwardings) {
      if (l4 && pf.protocol == key_.ip_proto && key_.tp_dst >= pf.external_min &&
          key_.tp_dst <= pf.external_max) {
        hit = &pf;
      }
    }
    if (hit == nullptr || parsed_.l4_offset == 0) {
      note([&] { return "floating IP " + f.external.toString() + ": no port forwarding for it"; });
      drop(DropReason::FloatingIpPortNotForwarded);
      return false;
    }
    const auto port = static_cast<uint16_t>(hit->internal_min + (key_.tp_dst - hit->external_min));
    note([&] {
      return "port forwarding: " + f.external.toString() + ":" + std::to_string(key_.tp_dst) +
             " -> " + hit->internal.toString() + ":" + std::to_string(port) +
             " (DNAT, on the gateway host)";
    });
    Action& a = act(ActionKind::Nat);
    a.source_side = false;
    a.address = toV4(hit->internal);
    a.to_port = port;
    std::copy_n(hit->internal.bytes.begin(), 4, key_.ip_dst.begin());
    key_.tp_dst = port;
    return true;
  }

  // A reply of a port forwarding, leaving by router `r`'s gateway from the
  // VM's host: its source becomes the floating IP and its external port.
  bool forwardOut(const Router& r) {
    if (key_.ip_proto != 6 && key_.ip_proto != 17) return false;
    auto fw = t_.forwardingFrom(ctx_.key, src(), key_.ip_proto, key_.tp_src);
    if (fw.floating_ip == nullptr || fw.floating_ip->router_key != r.key) return false;
    tags_.push_back(floatingTag(fw.floating_ip->external));
    const auto port = static_cast<uint16_t>(fw.forwarding->external_min +
                                            (key_.tp_src - fw.forwarding->internal_min));
    note([&] {
      return "port forwarding: " + src().toString() + ":" + std::to_string(key_.tp_src) + " -> " +
             fw.floating_ip->external.toString() + ":" + std::to_string(port) +
             " (SNAT, on the VM's host)";
    });
    Action& a = act(ActionKind::Nat);
    a.source_side = true;
    a.address = toV4(fw.floating_ip->external);
    a.to_port = port;
    std::copy_n(fw.floating_ip->external.bytes.begin(), 4, key_.ip_src.begin());
    key_.tp_src = port;
    return true;
  }

  // --- load balancers ---

  // The router whose gateway, held by this host, serves a floating IP on
  // a load balancer's VIP (a port bound nowhere); nullptr if it is not one.
  const Router* vipFloatingIpHere(const topology::FloatingIp& f) {
    const Port* vip = t_.findPort(f.port_key);
    const Router* r = t_.findRouter(f.router_key);
    tag(TagKind::Port, f.port_key);
    tag(TagKind::Router, f.router_key);
    if (vip == nullptr || vip->listeners.empty() || r == nullptr || !r->gateway ||
        r->gateway->host != host_.host) {
      return nullptr;
    }
    return r;
  }

  // A connection to a listener of a load balancer's VIP on `sw`: chooses
  // the member (the pinned one, least connections, or by Maglev hashing),
  // translates to it (LbDnat) and leaves the packet, now to the member, to
  // the caller to forward. nullopt: the destination is no VIP there; false:
  // it was answered or dropped. `reply_mac` answers pings and refusals.
  std::optional<bool> balance(const Switch& sw, const MacAddress& reply_mac) {
    IpAddress vip = dst();
    if (!t_.isVip(vip)) return std::nullopt;
    const Port* v = t_.portByIp(sw.key, vip);
    if (v == nullptr || v->listeners.empty()) return std::nullopt;
    tag(TagKind::Port, v->key);
    const topology::Balancer* b =
        hasPorts(key_.ip_proto) ? t_.balancerAt(sw.key, vip, key_.ip_proto, key_.tp_dst) : nullptr;
    if (b == nullptr) {
      if ((key_.ip_proto == ipproto::kIcmp && key_.tp_src == 8) || isIcmpv6(128)) {
        note([&] { return "load balancer VIP " + vip.toString() + ": echo reply"; });
        emit(echoReply(frame_, parsed_, reply_mac));
        return false;
      }
      note([&] {
        return "load balancer VIP " + vip.toString() + ": no listener on " + flowText(key_);
      });
      refuse(reply_mac, vip);
      drop(DropReason::LbNoListener);
      return false;
    }
    const topology::LbListener& l = t_.listenerOf(*b);
    if (!l.allowed_cidrs.empty() &&
        std::none_of(l.allowed_cidrs.begin(), l.allowed_cidrs.end(),
                     [&](const IpPrefix& c) { return c.contains(src()); })) {
      note([&] { return "listener " + l.id + ": " + src().toString() + " is not allowed"; });
      drop(DropReason::LbSourceNotAllowed);
      return false;
    }
    const topology::LbMember* m = nullptr;
    if (ctx_.lb_member_port != 0) {
      for (const auto& c : l.members) {
        if (c.address == ctx_.lb_member && c.port == ctx_.lb_member_port && c.up) m = &c;
      }
      note([&] {
        return "listener " + l.id + ": connection pinned to " + ctx_.lb_member.toString() + ":" +
               std::to_string(ctx_.lb_member_port) +
               (m != nullptr ? "" : ", which is gone or down");
      });
    }
    const bool chosen = m == nullptr;  // (by the table below, not a pin)
    if (m == nullptr) {
      bool backup = b->primary == nullptr;
      const auto& table = backup ? b->backup : b->primary;
      if (table == nullptr) {
        note([&] { return "listener " + l.id + ": no member is up"; });
        refuse(reply_mac, vip);
        drop(DropReason::LbNoMember);
        return false;
      }
      if (l.algorithm == topology::LbAlgorithm::LeastConnections && ctx_.stage == Stage::FromPort) {
        note([&] { return "listener " + l.id + ": the member with the fewest connections here"; });
        d_.actions.clear();
        Action& a = act(ActionKind::LbChoose);
        a.switch_key = sw.key;
        a.to = vip;
        return false;
      }
      auto index = table->pick(flowHash(l));
      const auto& members = backup ? b->backup_members : b->primary_members;
      m = &l.members[members[*index]];
      note([&] {
        return "listener " + l.id + ": Maglev hash of the " +
               (hashesSourceOnly(l) ? std::string("source address") : std::string("5-tuple")) +
               " chooses " + (backup ? "backup " : "") + "member " + m->address.toString() + ":" +
               std::to_string(m->port);
      });
    }
    const bool hairpin = m->address == src();
    Action& a = act(ActionKind::LbDnat);
    if (chosen) {
      a.lb_member = static_cast<uint16_t>(m - l.members.data() + 1);
      a.switch_key = sw.key;
    }
    a.to = m->address;
    a.to_port = m->port;
    a.listener = nat::stableHash(l.id);
    a.limit = l.connection_limit;
    a.hairpin = hairpin;
    a.eth_src = v->mac;
    if (hairpin) {
      note([&] { return "the member is the client: its source becomes the VIP (hairpin)"; });
      key_.ip_src = key_.ip_dst;
    }
    std::copy_n(m->address.bytes.begin(), 16, key_.ip_dst.begin());
    key_.tp_dst = m->port;
    return true;
  }

  bool hashesSourceOnly(const topology::LbListener& l) const {
    return l.source_ip_persistence || l.algorithm == topology::LbAlgorithm::SourceIp;
  }

  // What a listener's Maglev table is looked up by: the source address, or
  // the 5-tuple; never what changes along a connection (flags, TTL).
  uint64_t flowHash(const topology::LbListener& l) const {
    const size_t width = key_.eth_type == ethertype::kIpv6 ? 16 : 4;
    std::string bytes(reinterpret_cast<const char*>(key_.ip_src.data()), width);
    if (!hashesSourceOnly(l)) {
      bytes.append(reinterpret_cast<const char*>(key_.ip_dst.data()), width);
      const uint8_t rest[5] = {
          key_.ip_proto, static_cast<uint8_t>(key_.tp_src >> 8), static_cast<uint8_t>(key_.tp_src),
          static_cast<uint8_t>(key_.tp_dst >> 8), static_cast<uint8_t>(key_.tp_dst)};
      bytes.append(reinterpret_cast<const char*>(rest), sizeof(rest));
    }
    return nat::stableHash(bytes);
  }

  // No listener or no member: TCP is reset, UDP told the port is
  // unreachable, as a host with nothing listening would.
  void refuse(const MacAddress& reply_mac, const IpAddress& vip) {
    noCache();
    if (key_.ip_proto == ipproto::kTcp && (key_.tcp_flags & packet::TcpHeader::kRst) == 0) {
      emit(tcpReset(frame_, parsed_, reply_mac));
    } else if (key_.ip_proto == ipproto::kUdp) {
      icmpBack(reply_mac, vip, {3, 3}, {1, 4});
    }
  }

  // After LbDnat on the VIP's switch: to the member, on the switch or
  // through its router.
  void toMember(const Switch& sw) {
    IpAddress to = dst();
    if (const Port* d = t_.portByIp(sw.key, to)) {
      // A hairpin comes from the VIP's MAC, as from the VIP.
      const Action& dnat = d_.actions.back();
      const MacAddress from = dnat.hairpin ? dnat.eth_src : key_.eth_src;
      note([&] { return switchText(sw) + ": member " + to.toString() + " is " + portText(*d); });
      setEth(from, d->mac);
      return deliver(sw, *d);
    }
    for (const auto& subnet : sw.subnets) {
      if (!subnet.gateway || subnet.gateway->family != to.family) continue;
      const Router* r = nullptr;
      if (const RouterInterface* i = t_.routerInterfaceOn(sw.key, *subnet.gateway, &r)) {
        note([&] { return "member " + to.toString() + " is behind " + routerText(*r); });
        return route(*r, i, &sw);
      }
    }
    note([&] { return switchText(sw) + ": member " + to.toString() + " is not reachable"; });
    drop(DropReason::NoRoute);
  }

  // --- the metadata service ---

  // To the metadata service's address: a request to its HTTP server, or
  // an answer to the host's load-balancer health checks, which come from
  // that address (agent/health_checker.h): TCP, UDP or ICMP.
  bool isMetadataRequest() const {
    return host_.metadata && key_.eth_type == ethertype::kIpv4 &&
           (key_.ip_proto == ipproto::kTcp || key_.ip_proto == ipproto::kUdp ||
            key_.ip_proto == ipproto::kIcmp) &&
           Ipv4Address::of(dst()) == kMetadataAddress;
  }

  // A VM's request to the metadata service, to this host's: its source
  // names the port and which of its addresses it came from.
  void toMetadata(const Port& p) {
    IpAddress from = src();
    uint8_t index = 0;
    std::optional<Ipv4Address> peer;
    for (const auto& ip : p.ips) {
      if (ip.family != 4) continue;
      if (ip == from) {
        peer = metadataAddressOf({p.key, index});
        break;
      }
      ++index;
    }
    if (!peer) {
      // An allowed address pair's, a fifth address's, or a port key out of
      // the range addresses can name.
      note([&] { return "metadata: " + from.toString() + " cannot be answered for this port"; });
      return drop(DropReason::MetadataUnserved);
    }
    note([&] {
      return "metadata service: request of " + portText(p) + " from " + from.toString() +
             ", to this host's (as " + peer->ip().toString() + ")";
    });
    Action& a = act(ActionKind::Nat);
    a.source_side = true;
    a.address = *peer;
    // To the service's interface, whatever next hop the VM sent it to (the
    // service's address on the link, or its router).
    setEth(key_.eth_src, kMetadataMac);
    act(ActionKind::ToMetadata);
  }

  // The metadata service's answer, back to the port and address its
  // destination names.
  void fromMetadata() {
    auto peer =
        key_.eth_type == ethertype::kIpv4 ? metadataPeerOf(Ipv4Address::of(dst())) : std::nullopt;
    if (!peer) return drop(DropReason::MetadataUnserved);
    const Port* p = t_.findPort(peer->port);
    tag(TagKind::Port, peer->port);
    if (p == nullptr || p->host != host_.host) return drop(DropReason::MetadataUnserved);
    const IpAddress* to = nullptr;
    uint8_t index = 0;
    for (const auto& ip : p->ips) {
      if (ip.family != 4) continue;
      if (index++ == peer->index) {
        to = &ip;
        break;
      }
    }
    if (to == nullptr) return drop(DropReason::MetadataUnserved);
    note([&] { return "metadata service: answer to " + portText(*p) + " at " + to->toString(); });
    Action& a = act(ActionKind::Nat);
    a.source_side = false;
    a.address = toV4(*to);
    setEth(kMetadataMac, p->mac);
    act(ActionKind::Output).port = p->key;
  }

  // --- local IPs ---

  // The port on this host that answers local IP `ip` on a switch, and its
  // association; nullptr if none.
  const Port* localIpPort(const Switch& sw, const IpAddress& ip,
                          const topology::LocalIp** association) const {
    for (uint32_t key : t_.localIpPorts(sw.key, ip)) {
      const Port* f = t_.findPort(key);
      if (f == nullptr || f->host != host_.host) continue;
      for (const auto& l : f->local_ips) {
        if (l.local == ip) {
          *association = &l;
          return f;
        }
      }
    }
    return nullptr;
  }

  // A packet to a local IP this host answers goes on to the associated
  // port's address (the port itself reaches the address's own port).
  bool localIpClient(const Switch& sw, const Port& from) {
    const topology::LocalIp* l = nullptr;
    const Port* f = localIpPort(sw, dst(), &l);
    if (f == nullptr || f->key == from.key) return false;
    tag(TagKind::Port, f->key);
    note([&] {
      return "local IP " + l->local.toString() + " -> " + l->fixed.toString() + " (" +
             portText(*f) + ", on this host)";
    });
    act(ActionKind::LocalIpDnat).address = toV4(l->fixed);
    std::copy_n(l->fixed.bytes.begin(), 4, key_.ip_dst.begin());
    setEth(key_.eth_src, f->mac);
    deliver(sw, *f);
    return true;
  }

  // What a port that answers local IPs sends from the associated address
  // may be a reply to a client that spoke to the local IP.
  void localIpServer(const Port& p) {
    IpAddress from = src();
    for (const auto& l : p.local_ips) {
      if (l.fixed != from) continue;
      note([&] {
        return "local IP: a reply from " + from.toString() + " comes from " + l.local.toString() +
               " if it was spoken to there";
      });
      act(ActionKind::LocalIpReply);
      return;
    }
  }

  void fromUplink() {
    const Switch* sw = t_.findSwitch(ctx_.key);
    tag(TagKind::Switch, ctx_.key);
    if (sw == nullptr || sw->physical_network.empty()) return drop(DropReason::UnknownUplink);
    note([&] { return "ingress: uplink " + sw->physical_network + " on " + switchText(*sw); });
    if (key_.eth_type == ethertype::kArp) return arpFromUplink(*sw);
    if (isNeighborDiscovery() && key_.ip_ttl != 255) return drop(DropReason::NdBadHopLimit);
    if (isNeighborSolicitation() && ndFromUplink(*sw)) return;

    if (auto rp = t_.routerPortByMac(sw->key, key_.eth_dst); rp && rp->interface == nullptr) {
      tag(TagKind::Router, rp->router->key);
      const auto& gw = *rp->router->gateway;
      if (gw.host != host_.host) return drop(DropReason::NotGatewayHost);
      note([&] { return "gateway of " + routerText(*rp->router) + " receives it"; });
      if (key_.eth_type == ethertype::kIpv4) {
        IpAddress to = dst();
        tags_.push_back(floatingTag(to));
        const topology::FloatingIp* f = t_.floatingIpAt(to);
        if (f != nullptr && vipFloatingIpHere(*f) == rp->router) {
          // To the VIP, balanced in the router: the translation goes
          // straight from the floating IP to the member (LbDnat), and the
          // replies come back from the floating IP.
          note([&] {
            return "floating IP " + to.toString() + " -> " + f->fixed.toString() +
                   " (a load balancer's VIP, on the gateway host)";
          });
          std::copy_n(f->fixed.bytes.begin(), 4, key_.ip_dst.begin());
        } else if (f != nullptr && !f->forwardings.empty() && f->router_key == rp->router->key &&
                   !forwardIn(*f)) {
          return;
        } else if (f != nullptr && f->router_key == rp->router->key && servedByGateway(*f)) {
          note([&] {
            return "floating IP " + to.toString() + " -> " + f->fixed.toString() +
                   " (DNAT on the gateway host: the VM's host has no uplink)";
          });
          Action& a = act(ActionKind::Nat);
          a.source_side = false;
          a.address = toV4(f->fixed);
          a.helper = ftpHelper(*rp->router);
          std::copy_n(f->fixed.bytes.begin(), 4, key_.ip_dst.begin());
        }
      }
      meter(*rp->router, /*ingress=*/true);
      return route(*rp->router, nullptr, nullptr);
    }
    if (key_.eth_type == ethertype::kIpv4) {
      IpAddress to = dst();
      tags_.push_back(floatingTag(to));
      if (const topology::FloatingIp* f = t_.floatingIpAt(to)) {
        // Whether it is served here depends on the VM's port and the
        // router, whichever way it goes.
        tag(TagKind::Port, f->port_key);
        tag(TagKind::Router, f->router_key);
        const Port* vm = t_.findPort(f->port_key);
        const Router* r = t_.findRouter(f->router_key);
        // Routed in as by the gateway, so the router must have one.
        if (vm != nullptr && r != nullptr && r->gateway && vm->host == host_.host &&
            key_.eth_dst == vm->mac) {
          note([&] {
            return "floating IP " + to.toString() + " -> " + f->fixed.toString() +
                   " (DNAT, on the VM's host)";
          });
          Action& a = act(ActionKind::Nat);
          a.source_side = false;
          a.address = toV4(f->fixed);
          a.helper = ftpHelper(*r);
          std::copy_n(f->fixed.bytes.begin(), 4, key_.ip_dst.begin());
          meter(*r, /*ingress=*/true);
          return route(*r, nullptr, nullptr);
        }
      }
    }
    // A provider network's own ports on this host.
    if (key_.eth_dst.isMulticast()) return flood(*sw, 0, /*remote=*/false);
    const Port* d = t_.portByMac(sw->key, key_.eth_dst);
    if (d != nullptr && d->host == host_.host) return deliver(*sw, *d);
    drop(DropReason::UplinkNotForHost);
  }

  void toPort() {
    const Port* p = t_.findPort(ctx_.key);
    tag(TagKind::Port, ctx_.key);
    if (p == nullptr || p->host != host_.host) return drop(DropReason::TunnelNotForHost);
    note([&] { return "egress: to " + portText(*p); });
    if (!p->admin_up) return drop(DropReason::DestinationDown);
    if (p->port_security) {
      if (!key_.eth_dst.isMulticast() && key_.eth_dst != p->mac &&
          std::none_of(p->allowed_pairs.begin(), p->allowed_pairs.end(),
                       [&](const auto& pair) { return pair.mac == key_.eth_dst; })) {
        return drop(DropReason::PortSecurityDestination);
      }
      sender_ = ctx_.sender;
      if (isIp(key_) && !securityGroups(*p, Direction::Ingress)) return;
    }
    if (p->qos.ingress) police(*p, *p->qos.ingress, /*sending=*/false);
    if (p->trunk_parent != 0) {
      // A trunk's subport: out of its parent's interface, in its VLAN.
      note([&] {
        return "subport of a trunk: out of port " + std::to_string(p->trunk_parent) + " in VLAN " +
               std::to_string(p->trunk_vid);
      });
      Action& out = act(ActionKind::Output);
      out.port = p->trunk_parent;
      out.vlan = p->trunk_vid;
      return;
    }
    act(ActionKind::Output).port = p->key;
  }

  // QoS: what a port sends or receives is held to its bandwidth limit, per
  // packet (the cached decision keeps the action; the datapath keeps the
  // token bucket).
  void police(const Port& p, const topology::BandwidthLimit& limit, bool sending) {
    note([&] {
      return std::string("QoS: ") + (sending ? "egress" : "ingress") + " limited to " +
             std::to_string(limit.kbps) + " kbit/s" +
             (limit.burst_kbits != 0 ? ", bursts of " + std::to_string(limit.burst_kbits) + " kbit"
                                     : "");
    });
    Action& a = act(ActionKind::Police);
    a.port = p.key;
    a.source_side = sending;
    a.limit_kbps = limit.kbps;
    a.burst_kbits = limit.burst_kbits;
  }

  void toGateway() {
    const Router* r = t_.findRouter(ctx_.key);
    tag(TagKind::Router, ctx_.key);
    if (r == nullptr || !r->gateway) return drop(DropReason::GatewayUnscheduled);
    if (r->gateway->host != host_.host) return drop(DropReason::NotGatewayHost);
    note([&] { return "gateway of " + routerText(*r) + " on this host takes it out"; });
    auto choice = lookupRoute(*r, dst());
    if (!choice || choice->interface != nullptr) return drop(DropReason::NoRoute);
    if (key_.eth_type == ethertype::kIpv4) {
      if (const topology::FloatingIp* f = t_.floatingIpBehind(r->key, src());
          f != nullptr && servedByGateway(*f)) {
        return floatingOut(*r, choice->nexthop, *f);
      }
    }
    gatewayOut(*r, *choice, /*local_snat=*/true);
  }

  // Distributed SNAT: a reply the gateway's host steered here, already
  // translated back by this host's SNAT table.
  void fromSnatLease() {
    const Router* r = t_.findRouter(ctx_.key);
    tag(TagKind::Router, ctx_.key);
    if (r == nullptr || !r->gateway || r->gateway->leaseOf(host_.host) == nullptr) {
      return drop(DropReason::SnatLeaseNotHere);
    }
    note([&] {
      return "reply to distributed SNAT of " + routerText(*r) +
             ", steered here by the gateway's host";
    });
    meter(*r, /*ingress=*/true);
    route(*r, nullptr, nullptr);
  }

  // A floating IP whose VM's host has no uplink to the router's external
  // network: the gateway's host translates it, answers ARP for it, and
  // carries its traffic.
  bool servedByGateway(const topology::FloatingIp& f) {
    if (f.port_key == 0) return false;
    tag(TagKind::Port, f.port_key);
    tag(TagKind::Router, f.router_key);
    const Port* vm = t_.findPort(f.port_key);
    const Router* r = t_.findRouter(f.router_key);
    if (vm == nullptr || vm->host == 0 || r == nullptr || !r->gateway) return false;
    const Switch* ext = t_.findSwitch(r->gateway->switch_key);
    if (ext == nullptr || ext->physical_network.empty()) return false;
    if (vm->host == host_.host) return !host_.hasUplink(ext->physical_network);
    tag(TagKind::Host, vm->host);
    const topology::Host* h = t_.findHost(vm->host);
    return h != nullptr && !h->hasUplink(ext->physical_network);
  }

  // On the gateway's host: a floating IP's packet out, its source the
  // floating IP, from the gateway's MAC (which answers ARP for it here).
  void floatingOut(const Router& r, const IpAddress& nexthop, const topology::FloatingIp& f) {
    const auto& gw = *r.gateway;
    const Switch* ext = t_.findSwitch(gw.switch_key);
    tag(TagKind::Switch, gw.switch_key);
    tags_.push_back(floatingTag(f.external));
    note([&] {
      return "floating IP: " + f.fixed.toString() + " -> " + f.external.toString() +
             " (SNAT on the gateway host: the VM's host has no uplink)";
    });
    auto mac = resolve(*ext, nexthop, gw.mac, f.external);
    if (!mac) return;
    meter(r, /*ingress=*/false);
    Action& a = act(ActionKind::Nat);
    a.source_side = true;
    a.address = toV4(f.external);
    a.helper = ftpHelper(r);
    std::copy_n(f.external.bytes.begin(), 4, key_.ip_src.begin());
    setEth(gw.mac, *mac);
    uplink(*ext);
  }

  // --- port security and security groups ---

  bool ownsMac(const Port& p, const MacAddress& mac) const {
    return mac == p.mac || std::any_of(p.allowed_pairs.begin(), p.allowed_pairs.end(),
                                       [&](const auto& pair) { return pair.mac == mac; });
  }
  bool ownsIp(const Port& p, const MacAddress& mac, const IpAddress& ip) const {
    if (mac == p.mac && std::find(p.ips.begin(), p.ips.end(), ip) != p.ips.end()) return true;
    return std::any_of(p.allowed_pairs.begin(), p.allowed_pairs.end(), [&](const auto& pair) {
      return pair.mac == mac && pair.prefix.contains(ip);
    });
  }

  bool portSecurity(const Port& p) {
    if (!ownsMac(p, key_.eth_src)) {
      note([&] {
        return "port security: source MAC " + key_.eth_src.toString() + " is not the port's";
      });
      drop(DropReason::PortSecurityMac);
      return false;
    }
    if (key_.eth_type == ethertype::kArp) {
      // The ARP sender's MAC is not in the flow key: a refusal of one
      // frame says nothing of the next with the same key.
      noCache();
      packet::ArpPacket arp;
      if (!packet::load(frame_, parsed_.l3_offset, arp)) {
        drop(DropReason::ArpTruncated);
        return false;
      }
      IpAddress spa = arp.sender_ip.ip();
      bool probe = spa == IpAddress::v4(0, 0, 0, 0);
      if (arp.sender_mac != key_.eth_src || (!probe && !ownsIp(p, arp.sender_mac, spa))) {
        note([&] {
          return "port security: ARP sender " + arp.sender_mac.toString() + " " + spa.toString() +
                 " is not the port's";
        });
        drop(DropReason::PortSecurityArp);
        return false;
      }
      note([] { return std::string("port security: ARP sender belongs to the port"); });
      return true;
    }
    if (!isIp(key_)) {
      drop(DropReason::PortSecurityEthertype);
      return false;
    }
    IpAddress s = src();
    bool allowed = ownsIp(p, key_.eth_src, s);
    if (!allowed && isDhcpRequest() && s == IpAddress::v4(0, 0, 0, 0)) allowed = true;
    if (!allowed && s.family == 6) {
      // The link-local address of the MAC (as Neutron), and the
      // unspecified address of duplicate address detection and MLD.
      allowed = s == linkLocalOf(key_.eth_src) ||
                (s.bytes == std::array<uint8_t, 16>{} && key_.ip_proto == ipproto::kIcmpv6);
    }
    if (!allowed) {
      note([&] { return "port security: source " + s.toString() + " is not the port's"; });
      drop(DropReason::PortSecurityIp);
      return false;
    }
    note([&] {
      return "port security: source " + key_.eth_src.toString() + " " + s.toString() +
             " belongs to the port";
    });
    // Only the routers and the DHCP servers of the network speak as such.
    if (isIcmpv6(134)) {
      note([] { return std::string("port security: a port does not advertise routes"); });
      drop(DropReason::PortSecurityRouterAdvertisement);
      return false;
    }
    if (isDhcpServerMessage()) {
      note([] { return std::string("port security: a port is no DHCP server"); });
      drop(DropReason::PortSecurityDhcpServer);
      return false;
    }
    if (isIcmpv6(136)) return ownsAdvertisedTarget(p);
    return true;
  }

  // A neighbour advertisement speaks for its target: one of the port's
  // addresses (or the link-local one of its MAC).
  bool ownsAdvertisedTarget(const Port& p) {
    noCache();  // the target is not in the flow key
    auto t = ndTarget();
    if (!t) return false;
    const IpAddress& target = *t;
    if (ownsIp(p, key_.eth_src, target) || target == linkLocalOf(key_.eth_src)) return true;
    note([&] { return "port security: advertises " + target.toString() + ", not the port's"; });
    drop(DropReason::PortSecurityNeighborAdvertisement);
    return false;
  }

  // Neutron's firewall lets these pass whatever the groups say: neighbour
  // discovery and MLD (the link does not work without them), a router's
  // advertisements, and DHCP between a port and its servers.
  bool alwaysAllowed(Direction dir) const {
    const bool in = dir == Direction::Ingress;
    if (key_.eth_type == ethertype::kIpv6 && key_.ip_proto == ipproto::kIcmpv6) {
      switch (key_.tp_src) {
        case 130:  // MLD query
        case 134:  // router advertisement
          return in;
        case 131:  // MLD report
        case 133:  // router solicitation
        case 143:  // MLDv2 report
          return !in;
        case 135:  // neighbour solicitation
        case 136:  // neighbour advertisement
          return true;
        default:
          return false;
      }
    }
    if (key_.ip_proto != ipproto::kUdp) return false;
    if (key_.eth_type == ethertype::kIpv4) {
      return in ? key_.tp_src == packet::dhcp::kServerPort &&
                      key_.tp_dst == packet::dhcp::kClientPort
                : isDhcpRequest();
    }
    return in ? isDhcpServerMessage() : isDhcpv6Request();
  }

  bool ruleMatches(const Rule& r, Direction dir, const IpAddress& remote) {
    if (r.direction != dir) return false;
    if (r.family != (key_.eth_type == ethertype::kIpv6 ? 6 : 4)) return false;
    if (r.protocol && *r.protocol != key_.ip_proto) return false;
    // A later fragment's ports are its first fragment's (conntrack/fragments.h).
    if (r.protocol && hasPorts(*r.protocol) &&
        (key_.ip_frag != packet::Fragment::Later || parsed_.fragment_ports)) {
      if (r.port_min && key_.tp_dst < *r.port_min) return false;
      if (r.port_max && key_.tp_dst > *r.port_max) return false;
    }
    if (r.protocol && (*r.protocol == ipproto::kIcmp || *r.protocol == ipproto::kIcmpv6)) {
      if (r.port_min && key_.tp_src != *r.port_min) return false;
      if (r.port_max && key_.tp_dst != *r.port_max) return false;
    }
    if (r.remote_prefix && !r.remote_prefix->contains(remote)) return false;
    if (r.remote_group) {
      tag(TagKind::Group, *r.remote_group);
      if (dir == Direction::Ingress && sender_.known) {
        return std::binary_search(sender_.groups.begin(), sender_.groups.end(), *r.remote_group);
      }
      return t_.groupHasAddress(*r.remote_group, remote);
    }
    return true;
  }

  bool securityGroups(const Port& p, Direction dir) {
    const char* way = dir == Direction::Ingress ? "ingress" : "egress";
    // Stateless groups: each packet by the rules alone, nothing tracked.
    const bool stateless = t_.isStateless(p.key);
    CtState ct = stateless ? CtState::Untracked : ctx_.ct;
    if (ct == CtState::Established || ct == CtState::Related) {
      note([&] {
        return std::string("security groups (") + way + "): " + ctText(ct, ctx_.ct_reply) +
               ", allowed";
      });
      return true;
    }
    if (ct == CtState::Invalid) {
      note([&] { return std::string("security groups (") + way + "): invalid for conntrack"; });
      drop(ctx_.ct_invalid != DropReason::None ? ctx_.ct_invalid : DropReason::ConntrackNotSyn);
      return false;
    }
    if (alwaysAllowed(dir)) {
      note([&] {
        return std::string("security groups (") + way + "): " + flowText(key_) +
               " is always allowed (neighbour discovery, MLD, DHCP)";
      });
      return true;
    }
    IpAddress remote = dir == Direction::Ingress ? src() : dst();
    for (uint32_t gk : p.groups) {
      tag(TagKind::Group, gk);
      const SecurityGroup* g = t_.findGroup(gk);
      if (g == nullptr) continue;
      for (const Rule& r : g->rules) {
        if (!ruleMatches(r, dir, remote)) continue;
        note([&] {
          return "security group " + named(g->name, g->id) + ": rule " + r.id + " (" +
                 ruleText(r, t_) + ") allows " + flowText(key_) + ", " +
                 (stateless ? std::string("stateless") : ctText(ct, false));
        });
        if (ct == CtState::New) {
          act(ActionKind::CtCommit).port = p.key;
          if ((p.log_events & Port::kLogAccept) != 0) logEvent(p, dir, /*accepted=*/true);
        }
        return true;
      }
    }
    note([&] {
      std::string groups;
      for (uint32_t gk : p.groups) {
        const SecurityGroup* g = t_.findGroup(gk);
        groups += (groups.empty() ? "" : ", ") + (g != nullptr ? named(g->name, g->id) : "?");
      }
      if (groups.empty()) groups = "none (port security drops all IP)";
      return std::string("security groups ") + groups + ": no " + way + " rule allows " +
             flowText(key_);
    });
    if ((p.log_events & Port::kLogDrop) != 0) logEvent(p, dir, /*accepted=*/false);
    drop(dir == Direction::Ingress ? DropReason::SecurityGroupIngress
                                   : DropReason::SecurityGroupEgress);
    return false;
  }

  // Security-group logging: a record of the groups' decision, written by
  // the datapath (rate-limited) as the packet passes or is dropped.
  void logEvent(const Port& p, Direction dir, bool accepted) {
    note([&] {
      return std::string("security-group log: ") + (accepted ? "ACCEPT" : "DROP") + " recorded";
    });
    Action& a = act(ActionKind::Log);
    a.port = p.key;
    a.source_side = dir == Direction::Egress;
    a.accepted = accepted;
  }

  // --- the logical switch ---

  // Forwards the working frame on a switch by its destination MAC.
  void switchFrame(const Switch& sw, uint32_t from_port) {
    if (key_.eth_dst.isMulticast()) return flood(sw, from_port, /*remote=*/true);
    if (auto rp = t_.routerPortByMac(sw.key, key_.eth_dst)) {
      tag(TagKind::Router, rp->router->key);
      note([&] {
        return switchText(sw) + ": " + key_.eth_dst.toString() + " is " + routerText(*rp->router) +
               (rp->interface != nullptr ? " interface " + rp->interface->ip.toString()
                                         : std::string(" gateway"));
      });
      if (rp->interface == nullptr) return drop(DropReason::UplinkNotForHost);
      return route(*rp->router, rp->interface, &sw);
    }
    const Port* d = t_.portByMac(sw.key, key_.eth_dst);
    if (d == nullptr) {
      note([&] { return switchText(sw) + ": " + key_.eth_dst.toString() + " is unknown"; });
      if (!sw.physical_network.empty()) return uplink(sw);
      return flood(sw, from_port, /*remote=*/true);
    }
    note([&] { return switchText(sw) + ": " + key_.eth_dst.toString() + " is " + portText(*d); });
    deliver(sw, *d);
  }

  // To one port: locally, over the provider network, or through a tunnel.
  void deliver(const Switch& sw, const Port& d) {
    tag(TagKind::Port, d.key);
    if (!d.admin_up) return drop(DropReason::DestinationDown);
    if (d.host == 0) return drop(DropReason::DestinationUnbound);
    if (d.host == host_.host) {
      note([&] { return "deliver to " + portText(d) + " on this host"; });
      Action& a = act(ActionKind::Deliver);
      a.port = d.key;
      a.source_side = sender_.known;
      a.groups = sender_.groups;
      return;
    }
    if (!sw.physical_network.empty()) return uplink(sw);
    tunnel(sw, d.host, d.key);
  }

  void tunnel(const Switch& sw, uint32_t host, uint32_t port, uint32_t router = 0) {
    tag(TagKind::Host, host);
    note([&] {
      std::string what = port != 0     ? ", logical port " + std::to_string(port)
                         : router != 0 ? ", to the router's gateway"
                                       : ", flood";
      return "tunnel to " + hostText(host) + ", VNI " + std::to_string(sw.vni) + what;
    });
    const topology::Host* h = t_.findHost(host);
    if (h == nullptr) return drop(DropReason::DestinationUnbound);
    Action& a = act(ActionKind::Tunnel);
    a.remote = h->tunnel_ip;
    a.vxlan = !h->geneve;
    a.router = router;
    a.host = host;
    a.vni = sw.vni;
    a.port = port;
    a.source_side = sender_.known;
    a.groups = sender_.groups;
    a.switch_key = sw.key;
  }

  void uplink(const Switch& sw) {
    if (!host_.hasUplink(sw.physical_network)) return drop(DropReason::NoUplink);
    note([&] {
      return "out of uplink " + sw.physical_network +
             (sw.vlan != 0 ? " VLAN " + std::to_string(sw.vlan) : std::string());
    });
    act(ActionKind::Uplink).switch_key = sw.key;
  }

  // Broadcast and unknown unicast: every other local port on the switch
  // and, once each, every other host with ports there (or the uplink).
  void flood(const Switch& sw, uint32_t from_port, bool remote) {
    std::set<uint32_t> hosts;
    size_t local = 0;
    for (uint32_t pk : t_.portsOn(sw.key)) {
      const Port* p = t_.findPort(pk);
      if (pk == from_port || p->host == 0 || !p->admin_up) continue;
      if (p->host == host_.host) {
        Action& a = act(ActionKind::Deliver);
        a.port = pk;
        a.source_side = sender_.known;
        a.groups = sender_.groups;
        ++local;
      } else {
        hosts.insert(p->host);
      }
    }
    note([&] {
      return switchText(sw) + ": flood to " + std::to_string(local) + " local port(s)" +
             (remote ? (sw.physical_network.empty()
                            ? " and " + std::to_string(hosts.size()) + " host(s)"
                            : std::string(" and the uplink"))
                     : std::string());
    });
    if (!remote) return;
    if (!sw.physical_network.empty()) {
      if (host_.hasUplink(sw.physical_network)) act(ActionKind::Uplink).switch_key = sw.key;
      return;
    }
    for (uint32_t h : hosts) {
      tag(TagKind::Host, h);
      const topology::Host* host = t_.findHost(h);
      if (host == nullptr) continue;
      Action& a = act(ActionKind::Tunnel);
      a.remote = host->tunnel_ip;
      a.vxlan = !host->geneve;
      a.host = h;
      a.vni = sw.vni;
      a.switch_key = sw.key;
      a.source_side = sender_.known;
      a.groups = sender_.groups;
    }
  }

  // --- ARP ---

  void arpFromPort(const Switch& sw, const Port& p) {
    noCache();
    packet::ArpPacket arp;
    if (!packet::load(frame_, parsed_.l3_offset, arp)) return drop(DropReason::ArpTruncated);
    IpAddress tpa = arp.target_ip.ip();
    if (arp.operation.host() == 1 && arp.sender_ip != arp.target_ip) {
      std::optional<MacAddress> answer;
      std::string owner;
      const topology::LocalIp* local = nullptr;
      if (const Port* f = localIpPort(sw, tpa, &local); f != nullptr && f->key != p.key) {
        // A local IP this host answers: with the associated port's MAC.
        answer = f->mac;
        owner = "local IP of " + portText(*f);
      } else if (const Port* o = t_.portByIp(sw.key, tpa); o != nullptr && o->key != p.key) {
        tag(TagKind::Port, o->key);
        answer = o->mac;
        owner = portText(*o);
      } else if (auto rp = t_.routerPortByIp(sw.key, tpa)) {
        tag(TagKind::Router, rp->router->key);
        answer = rp->interface != nullptr ? rp->interface->mac : rp->router->gateway->mac;
        owner = routerText(*rp->router);
      } else if (host_.metadata && tpa == kMetadataAddress.ip()) {
        answer = kMetadataMac;
        owner = "the metadata service on this host";
      }
      if (answer) {
        note([&] {
          return "ARP responder: " + tpa.toString() + " is at " + answer->toString() + " (" +
                 owner + ")";
        });
        return emit(arpReply(frame_, parsed_, *answer));
      }
    }
    switchFrame(sw, p.key);
  }

  // --- neighbour discovery (IPv6's ARP) ---

  bool isNeighborSolicitation() const {
    return key_.eth_type == ethertype::kIpv6 && key_.ip_proto == ipproto::kIcmpv6 &&
           key_.tp_src == 135 && key_.tp_dst == 0;
  }

  // A neighbour solicitation's or advertisement's target (RFC 4861 4.3,
  // 4.4: after the ICMPv6 header's reserved word); none, and the packet
  // dropped, when it is cut short.
  std::optional<IpAddress> ndTarget() {
    if (parsed_.payload_offset == 0 || parsed_.payload_offset + 16 > parsed_.l3_end) {
      drop(DropReason::Icmpv6Truncated);
      return std::nullopt;
    }
    IpAddress target{6, {}};
    std::copy_n(frame_.begin() + parsed_.payload_offset, 16, target.bytes.begin());
    return target;
  }

  // Answers a solicitation for an address this switch knows (another
  // port's, a router interface's) as the ARP responder does; false when
  // the solicitation goes on to the switch (an address it does not know,
  // or the asker's own: duplicate address detection).
  bool ndFromPort(const Switch& sw, const Port& p) {
    noCache();
    auto t = ndTarget();
    if (!t) return true;
    const IpAddress& target = *t;
    std::optional<MacAddress> answer;
    bool router = false;
    std::string owner;
    if (const Port* o = t_.portByIp(sw.key, target); o != nullptr) {
      if (o->key == p.key) return false;
      tag(TagKind::Port, o->key);
      answer = o->mac;
      owner = portText(*o);
    } else if (auto rp = t_.routerPortByIp(sw.key, target); rp && rp->interface != nullptr) {
      tag(TagKind::Router, rp->router->key);
      answer = rp->interface->mac;
      router = true;
      owner = routerText(*rp->router);
    } else if (isLinkLocal(target)) {
      // A router interface's link-local address (the next hop its
      // advertisements give).
      for (const auto& [rk, r] : t_.routers()) {
        for (const auto& i : r.interfaces) {
          if (i.switch_key != sw.key || linkLocalOf(i.mac) != target) continue;
          tag(TagKind::Router, rk);
          answer = i.mac;
          router = true;
          owner = routerText(r);
        }
      }
    }
    if (!answer) return false;
    note([&] {
      return "ND responder: " + target.toString() + " is at " + answer->toString() + " (" + owner +
             ")";
    });
    emit(neighborAdvertisement(parsed_, target, *answer, router));
    return true;
  }

  bool isRouterSolicitation() const { return isIcmpv6(133); }

  // The advertisements of the routers on this switch, to the soliciting
  // port (RFC 4861 6.2.6); false when none advertises here, so that the
  // solicitation goes on to the switch (a router among the ports).
  bool routerSolicitation(const Switch& sw) {
    noCache();
    auto advertisers = advertisersOn(t_, sw);
    if (advertisers.empty()) return false;
    IpAddress from = src();
    bool unspecified = from.bytes == std::array<uint8_t, 16>{};
    for (const auto& a : advertisers) {
      tag(TagKind::Router, a.router);
      note([&] {
        std::string prefixes;
        for (const auto* s : a.subnets) prefixes += " " + s->cidr.toString();
        return "router advertisement from " + linkLocalOf(a.mac).toString() + ":" + prefixes;
      });
      emit(routerAdvertisement(sw, a.mac, a.subnets, unspecified ? kAllNodesMac : key_.eth_src,
                               unspecified ? kAllNodes : from));
    }
    return true;
  }

  // A solicitation on an uplink for a router gateway's IPv6 address held
  // here: answered (as ARP for its IPv4 one); false for any other.
  bool ndFromUplink(const Switch& sw) {
    noCache();
    auto t = ndTarget();
    if (!t) return true;
    const IpAddress& target = *t;
    auto rp = t_.routerPortByIp(sw.key, target);
    if (!rp || rp->interface != nullptr) return false;
    tag(TagKind::Router, rp->router->key);
    if (rp->router->gateway->host != host_.host) return false;
    note([&] {
      return "ND responder: " + target.toString() + " is the gateway of " + routerText(*rp->router);
    });
    emit(neighborAdvertisement(parsed_, target, rp->router->gateway->mac, /*router=*/true));
    return true;
  }

  void arpFromUplink(const Switch& sw) {
    noCache();
    packet::ArpPacket arp;
    if (!packet::load(frame_, parsed_.l3_offset, arp)) return drop(DropReason::ArpTruncated);
    IpAddress tpa = arp.target_ip.ip();
    if (arp.operation.host() == 1) {
      if (auto rp = t_.routerPortByIp(sw.key, tpa); rp && rp->interface == nullptr) {
        tag(TagKind::Router, rp->router->key);
        if (rp->router->gateway->host == host_.host) {
          note([&] {
            return "ARP responder: " + tpa.toString() + " is the gateway of " +
                   routerText(*rp->router);
          });
          return emit(arpReply(frame_, parsed_, rp->router->gateway->mac));
        }
      }
      tags_.push_back(floatingTag(tpa));
      if (const topology::FloatingIp* f = t_.floatingIpAt(tpa)) {
        const Port* vm = t_.findPort(f->port_key);
        if (vm != nullptr && vm->host == host_.host) {
          tag(TagKind::Port, vm->key);
          note([&] {
            return "ARP responder: floating IP " + tpa.toString() + " is at " + vm->mac.toString() +
                   " (" + portText(*vm) + " on this host)";
          });
          return emit(arpReply(frame_, parsed_, vm->mac));
        }
        if (const Router* r = vipFloatingIpHere(*f)) {
          note([&] {
            return "ARP responder: floating IP " + tpa.toString() +
                   " of a load balancer's VIP is at the gateway of " + routerText(*r);
          });
          return emit(arpReply(frame_, parsed_, r->gateway->mac));
        }
        // A floating IP with port forwardings: at the router's gateway.
        const Router* r = t_.findRouter(f->router_key);
        tag(TagKind::Router, f->router_key);
        if (!f->forwardings.empty() && r != nullptr && r->gateway &&
            r->gateway->host == host_.host) {
          note([&] {
            return "ARP responder: floating IP " + tpa.toString() +
                   " (port forwardings) is at the gateway of " + routerText(*r);
          });
          return emit(arpReply(frame_, parsed_, r->gateway->mac));
        }
        if (r != nullptr && r->gateway && r->gateway->host == host_.host && servedByGateway(*f)) {
          note([&] {
            return "ARP responder: floating IP " + tpa.toString() + " is at the gateway of " +
                   routerText(*r) + " (its VM's host has no uplink)";
          });
          return emit(arpReply(frame_, parsed_, r->gateway->mac));
        }
      }
    }
    // Provider networks: the local ports answer for themselves.
    if (key_.eth_dst.isMulticast()) return flood(sw, 0, /*remote=*/false);
    const Port* d = t_.portByMac(sw.key, key_.eth_dst);
    if (d != nullptr && d->host == host_.host) return deliver(sw, *d);
    note([] { return std::string("ARP for no address this host serves"); });
  }

  // --- DHCP ---

  // Answers a client's DHCP message when the port has an address in a
  // DHCP-enabled IPv4 subnet; false when another server must answer.
  bool dhcpServer(const Switch& sw, const Port& p) {
    const topology::Subnet* subnet = nullptr;
    IpAddress address;
    for (const auto& ip : p.ips) {
      for (const auto& s : sw.subnets) {
        if (ip.family == 4 && s.dhcp && s.cidr.contains(ip)) {
          subnet = &s;
          address = ip;
          break;
        }
      }
      if (subnet != nullptr) break;
    }
    if (subnet == nullptr) return false;
    noCache();
    packet::DhcpMessage m;
    auto udp = frame_.subspan(parsed_.payload_offset, parsed_.l3_end - parsed_.payload_offset);
    if (auto why = packet::parseDhcp(udp, m); why != DropReason::None) {
      drop(why);
      return true;
    }
    // Without a router, the metadata service is reached on the link, by a
    // route DHCP gives (as Neutron's isolated metadata does).
    bool routed = false;
    if (subnet->gateway) {
      auto rp = t_.routerPortByIp(sw.key, *subnet->gateway);
      routed = rp && rp->interface != nullptr;
    }
    DhcpAnswer answer = dhcpAnswer(m, sw, p, *subnet, address, host_.dhcp_lease_seconds,
                                   server(sw, *subnet), host_.metadata && !routed);
    note([&] { return "DHCP server: " + answer.summary; });
    if (!answer.frame.empty()) emit(std::move(answer.frame));
    return true;
  }

  // Answers a client's DHCPv6 message when the port has an address in a
  // DHCP-enabled IPv6 subnet whose address mode is DHCPv6 (stateful: the
  // address is served; stateless: the rest); false otherwise.
  bool dhcpv6Server(const Switch& sw, const Port& p) {
    using topology::Ipv6Mode;
    const topology::Subnet* served = nullptr;
    std::vector<IpAddress> addresses, dns;
    for (const auto& s : sw.subnets) {
      if (s.cidr.address.family != 6 || !s.dhcp ||
          (s.address_mode != Ipv6Mode::Dhcpv6Stateful &&
           s.address_mode != Ipv6Mode::Dhcpv6Stateless)) {
        continue;
      }
      bool mine = false;
      for (const auto& ip : p.ips) {
        if (!s.cidr.contains(ip)) continue;
        mine = true;
        if (s.address_mode == Ipv6Mode::Dhcpv6Stateful) addresses.push_back(ip);
      }
      if (!mine) continue;
      if (served == nullptr) served = &s;
      for (const auto& d : s.dns_servers) {
        if (std::find(dns.begin(), dns.end(), d) == dns.end()) dns.push_back(d);
      }
    }
    if (served == nullptr) return false;
    noCache();
    packet::Dhcpv6Message m;
    auto udp = frame_.subspan(parsed_.payload_offset, parsed_.l3_end - parsed_.payload_offset);
    if (auto why = packet::parseDhcpv6(udp, m); why != DropReason::None) {
      drop(why);
      return true;
    }
    MacAddress mac = serverMac(sw, *served);
    const std::string& domain = p.dhcp_domain.empty() ? sw.dns_domain : p.dhcp_domain;
    Dhcpv6Answer answer = dhcpv6Answer(m, parsed_, mac, addresses, dns, domain,
                                       host_.dhcp_lease_seconds, p.dhcpv6_options);
    note([&] { return "DHCPv6 server: " + answer.summary; });
    if (!answer.frame.empty()) emit(std::move(answer.frame));
    return true;
  }

  MacAddress serverMac(const Switch& sw, const topology::Subnet& s) {
    if (s.gateway) {
      if (auto rp = t_.routerPortByIp(sw.key, *s.gateway); rp && rp->interface != nullptr) {
        tag(TagKind::Router, rp->router->key);
        return rp->interface->mac;
      }
    }
    return MacAddress{{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}};
  }

  // The DHCP server's identity on a subnet: its router interface (whose
  // address also answers ARP), or a fixed local MAC with the gateway address.
  DhcpServerId server(const Switch& sw, const topology::Subnet& s) {
    DhcpServerId id{serverMac(sw, s), Ipv4Address{}};
    if (s.gateway) {
      id.address = toV4(*s.gateway);
    } else {
      IpAddress first = s.cidr.address;
      first.bytes[3] = static_cast<uint8_t>(first.bytes[3] | 1);
      id.address = toV4(first);
    }
    return id;
  }

  // --- the logical router ---

  struct RouteChoice {
    enum class Kind : uint8_t { Connected, External, Static, Default };
    const RouterInterface* interface = nullptr;  // null: the external gateway
    IpAddress nexthop{};
    int length = -1;
    Kind kind = Kind::Connected;
    IpPrefix prefix{};

    std::string text() const {
      switch (kind) {
        case Kind::Connected:
          return "connected " + prefix.toString();
        case Kind::External:
          return "connected " + prefix.toString() + " (external)";
        case Kind::Static:
          return "static route " + prefix.toString() + " via " + nexthop.toString();
        case Kind::Default:
          return "default route via " + nexthop.toString() + " (external gateway)";
      }
      return "?";
    }
  };

  std::optional<RouteChoice> lookupRoute(const Router& r, const IpAddress& to) {
    using Kind = RouteChoice::Kind;
    std::optional<RouteChoice> best;
    auto consider = [&](const RouteChoice& c) {
      if (!best || c.length > best->length) best = c;
    };
    // The external subnets the gateway has an address in.
    std::vector<IpPrefix> external;
    if (r.gateway) {
      // Its subnets decide which next hops are connected, whichever route wins.
      tag(TagKind::Switch, r.gateway->switch_key);
      if (const Switch* ext = t_.findSwitch(r.gateway->switch_key)) {
        for (const auto& s : ext->subnets) {
          for (const auto& ip : r.gateway->ips) {
            if (s.cidr.contains(ip)) external.push_back(s.cidr);
          }
        }
      }
    }
    auto connected = [&](const IpAddress& ip, RouteChoice& c) {
      for (const auto& i : r.interfaces) {
        if (i.subnet.contains(ip)) {
          c.interface = &i;
          return true;
        }
      }
      return std::any_of(external.begin(), external.end(),
                         [&](const auto& p) { return p.contains(ip); });
    };
    for (const auto& i : r.interfaces) {
      if (i.subnet.contains(to)) consider({&i, to, i.subnet.length, Kind::Connected, i.subnet});
    }
    for (const auto& p : external) {
      if (p.contains(to)) consider({nullptr, to, p.length, Kind::External, p});
    }
    for (const auto& route : r.routes) {
      if (!route.destination.contains(to)) continue;
      RouteChoice c{nullptr, route.nexthop, route.destination.length, Kind::Static,
                    route.destination};
      if (connected(route.nexthop, c)) consider(c);
    }
    if (r.gateway) {
      if (const auto& hop = r.gateway->nexthopFor(to.family); hop && hop->family == to.family) {
        consider({nullptr, *hop, 0, Kind::Default, {}});
      }
    }
    return best;
  }

  // The router's address that errors about a packet come from: its
  // address of the packet's family on the interface it came in by (or the
  // gateway); for IPv6 without one, the interface's link-local address.
  IpAddress routerSource(const Router& r, const RouterInterface* in, const MacAddress& in_mac) {
    const uint8_t family = key_.eth_type == ethertype::kIpv6 ? 6 : 4;
    if (in != nullptr) {
      for (const auto& i : r.interfaces) {
        if (i.port_key == in->port_key && i.ip.family == family) return i.ip;
      }
    } else if (r.gateway) {
      for (const auto& ip : r.gateway->ips) {
        if (ip.family == family) return ip;
      }
    }
    return family == 6 ? linkLocalOf(in_mac) : IpAddress{};
  }

  // An ICMP error back to the sender: `v4` (type, code) for IPv4, `v6` for
  // IPv6, never about an ICMP error (RFC 1812 4.3.2.7, RFC 4443 2.4 (e)).
  struct IcmpKind {
    uint8_t type;
    uint8_t code;
  };
  void icmpBack(const MacAddress& in_mac, const IpAddress& from, IcmpKind v4, IcmpKind v6) {
    if (key_.eth_type == ethertype::kIpv4 && from.family == 4) {
      if (key_.ip_proto == ipproto::kIcmp && key_.tp_src != 0 && key_.tp_src != 8) return;
      emit(icmpError(frame_, parsed_, in_mac, toV4(from), v4.type, v4.code, 0));
    } else if (key_.eth_type == ethertype::kIpv6 && from.family == 6) {
      if (key_.ip_proto == ipproto::kIcmpv6 && key_.tp_src < 128) return;
      emit(icmpv6Error(frame_, parsed_, in_mac, from, v6.type, v6.code, 0));
    }
  }

  bool isRouterAddress(const Router& r, const IpAddress& ip) const {
    for (const auto& i : r.interfaces) {
      if (i.ip == ip) return true;
    }
    return r.gateway &&
           std::find(r.gateway->ips.begin(), r.gateway->ips.end(), ip) != r.gateway->ips.end();
  }

  // Routes the working packet, which entered `r` by `in` (null: by its
  // gateway; `in_switch` null too then).
  void route(const Router& r, const RouterInterface* in, const Switch* in_switch) {
    tag(TagKind::Router, r.key);
    if (++hops_ > kMaxRouterHops) return drop(DropReason::TooManyHops);
    if (!isIp(key_)) return drop(DropReason::RouterNotIp);
    const MacAddress in_mac = in != nullptr ? in->mac : r.gateway->mac;
    IpAddress to = dst();
    if (isRouterAddress(r, to) || (in != nullptr && to == linkLocalOf(in_mac))) {
      return routerAddress(r, in_mac, to);
    }
    // (Whether `to` is a VIP on one of the router's networks depends on the
    // ports there: a port that becomes one changes this decision, so those
    // networks are tagged whichever it is now.)
    for (const auto& i : r.interfaces) {
      if (i.ip.family == to.family && i.subnet.contains(to)) tag(TagKind::Switch, i.switch_key);
    }
    if (t_.isVip(to)) {
      // A VIP on one of the router's networks: balanced here, then routed
      // to the member.
      for (const auto& i : r.interfaces) {
        if (i.ip.family != to.family || !i.subnet.contains(to)) continue;
        const Switch* vip_sw = t_.findSwitch(i.switch_key);
        tag(TagKind::Switch, i.switch_key);
        if (auto balanced = balance(*vip_sw, in_mac)) {
          if (!d_.actions.empty() && (d_.actions.back().kind == ActionKind::LbDnat ||
                                      d_.actions.back().kind == ActionKind::LbChoose)) {
            d_.actions.back().router = r.key;
          }
          if (*balanced) route(r, in, in_switch);
          return;
        }
      }
    }
    const IpAddress in_ip = routerSource(r, in, in_mac);
    if (isLinkLocal(to) || isLinkLocal(src())) {
      // RFC 4291 2.5.6: not beyond the link.
      note([&] { return routerText(r) + ": link-local addresses are not routed"; });
      return drop(DropReason::NoRoute);
    }
    if (key_.ip_ttl <= 1) {
      note([&] {
        return routerText(r) + ": TTL expired, ICMP time exceeded from " + in_ip.toString();
      });
      icmpBack(in_mac, in_ip, {11, 0}, {3, 0});
      noCache();
      return drop(DropReason::TtlExceeded);
    }
    auto choice = lookupRoute(r, to);
    if (!choice) {
      note([&] { return routerText(r) + ": no route to " + to.toString(); });
      icmpBack(in_mac, in_ip, {3, 0}, {1, 0});
      noCache();
      return drop(DropReason::NoRoute);
    }
    note([&] { return routerText(r) + ": " + to.toString() + " by " + choice->text(); });
    if (choice->interface == nullptr) {
      if (in == nullptr) return drop(DropReason::RouteHairpin);
      return leaveByGateway(r, *choice, in_mac, in_ip);
    }
    const RouterInterface& out = *choice->interface;
    const Switch* sw = t_.findSwitch(out.switch_key);
    tag(TagKind::Switch, out.switch_key);
    if (auto next = t_.routerPortByIp(sw->key, choice->nexthop);
        next && next->router->key != r.key && next->interface != nullptr) {
      // Another router on a shared network.
      checkMtu(*sw, in_mac, in_ip);
      decrementTtl();
      setEth(out.mac, next->interface->mac);
      return route(*next->router, next->interface, sw);
    }
    const Port* d = t_.portByIp(sw->key, choice->nexthop);
    if (d == nullptr) {
      note([&] { return switchText(*sw) + ": no port has " + choice->nexthop.toString(); });
      icmpBack(in_mac, in_ip, {3, 1}, {1, 3});
      noCache();
      return drop(DropReason::HostUnreachable);
    }
    checkMtu(*sw, in_mac, in_ip);
    decrementTtl();
    setEth(out.mac, d->mac);
    note([&] {
      return switchText(*sw) + ": " + choice->nexthop.toString() + " is " + portText(*d);
    });
    (void)in_switch;
    deliver(*sw, *d);
  }

  void leaveByGateway(const Router& r, const RouteChoice& choice, const MacAddress& in_mac,
                      const IpAddress& in_ip) {
    const auto& gw = *r.gateway;
    const Switch* ext = t_.findSwitch(gw.switch_key);
    tag(TagKind::Switch, gw.switch_key);
    checkMtu(*ext, in_mac, in_ip);
    decrementTtl();
    // A port forwarding's reply: from the floating IP, by the gateway.
    if (ctx_.stage == Stage::FromPort && key_.eth_type == ethertype::kIpv4 && forwardOut(r)) {
      meter(r, /*ingress=*/false);
      if (gw.host == 0) return drop(DropReason::GatewayUnscheduled);
      if (gw.host != host_.host) {
        note([&] { return "to the gateway of " + routerText(r) + " on " + hostText(gw.host); });
        setEth(gw.mac, gw.mac);
        return tunnel(*ext, gw.host, 0, r.key);
      }
      return gatewayOut(r, choice, /*local_snat=*/true);
    }
    // A floating IP is served by the VM's own host, through its uplink.
    if (ctx_.stage == Stage::FromPort && key_.eth_type == ethertype::kIpv4) {
      const Port* vm = t_.findPort(ctx_.key);
      if (const topology::FloatingIp* f = t_.floatingIpFor(ctx_.key, src());
          f != nullptr && f->router_key == r.key && vm != nullptr &&
          !host_.hasUplink(ext->physical_network) && gw.host != host_.host) {
        // No uplink here: the gateway's host translates it.
        meter(r, /*ingress=*/false);
        if (gw.host == 0) return drop(DropReason::GatewayUnscheduled);
        note([&] {
          return "floating IP " + f->external.toString() + ": no uplink on this host, to the " +
                 "gateway of " + routerText(r) + " on " + hostText(gw.host);
        });
        setEth(gw.mac, gw.mac);
        return tunnel(*ext, gw.host, 0, r.key);
      }
      if (const topology::FloatingIp* f = t_.floatingIpFor(ctx_.key, src());
          f != nullptr && f->router_key == r.key && vm != nullptr) {
        note([&] {
          return "floating IP: " + f->fixed.toString() + " -> " + f->external.toString() +
                 " (SNAT, on the VM's host)";
        });
        meter(r, /*ingress=*/false);
        Action& a = act(ActionKind::Nat);
        a.source_side = true;
        a.address = toV4(f->external);
        a.helper = ftpHelper(r);
        std::copy_n(f->external.bytes.begin(), 4, key_.ip_src.begin());
        auto mac = resolve(*ext, choice.nexthop, vm->mac, f->external);
        if (!mac) return;
        setEth(vm->mac, *mac);
        return uplink(*ext);
      }
    }
    if (gw.host != host_.host && snatsHere(r, *ext)) return gatewayOut(r, choice, true);
    if (gw.host == 0) return drop(DropReason::GatewayUnscheduled);
    if (gw.host != host_.host) {
      note([&] { return "to the gateway of " + routerText(r) + " on " + hostText(gw.host); });
      setEth(gw.mac, gw.mac);
      return tunnel(*ext, gw.host, 0, r.key);
    }
    gatewayOut(r, choice, /*local_snat=*/true);
  }

  // Distributed SNAT: whether this host translates a local port's packet
  // leaving by `r`'s gateway itself, in its lease of the gateway's ports
  // (IPv4 to be translated; the rest goes by the gateway's host).
  bool snatsHere(const Router& r, const Switch& ext) const {
    const auto& gw = *r.gateway;
    return ctx_.stage == Stage::FromPort && gw.snat && key_.eth_type == ethertype::kIpv4 &&
           gw.leaseOf(host_.host) != nullptr && host_.hasUplink(ext.physical_network) &&
           !isRouterAddress(r, src()) && t_.floatingIpAt(src()) == nullptr;
  }

  // Metering: the labels of `r` that count this packet, crossing its
  // gateway inwards (`ingress`) or outwards; addresses as inside the
  // router (before SNAT, after a floating IP's DNAT).
  void meter(const Router& r, bool ingress) {
    for (const auto& label : r.meters) {
      bool counted = false, excluded = false;
      for (const auto& rule : label.rules) {
        if (rule.ingress != ingress) continue;
        IpAddress remote = ingress ? src() : dst();
        bool matches = (!rule.remote || rule.remote->contains(remote)) &&
                       (!rule.source || rule.source->contains(src())) &&
                       (!rule.destination || rule.destination->contains(dst()));
        if (!matches) continue;
        (rule.excluded ? excluded : counted) = true;
      }
      if (!counted || excluded) continue;
      note([&] {
        return "metering label " + label.id + " of " + routerText(r) + " counts it (" +
               (ingress ? "ingress" : "egress") + ")";
      });
      act(ActionKind::Meter).meter = nat::stableHash(label.id);
    }
  }

  // On the gateway host: the next hop's MAC, SNAT, the uplink.
  void gatewayOut(const Router& r, const RouteChoice& choice, bool snat_here) {
    const auto& gw = *r.gateway;
    const Switch* ext = t_.findSwitch(gw.switch_key);
    tag(TagKind::Switch, gw.switch_key);
    const IpAddress* from = nullptr;
    for (const auto& ip : gw.ips) {
      if (ip.family == choice.nexthop.family) {
        from = &ip;
        break;
      }
    }
    if (from == nullptr) return drop(DropReason::NoRoute);
    // Distributed SNAT on a host that does not hold the gateway: from the
    // host's own MAC, and asking for the next hop without the gateway's
    // address (RFC 5227's probe), so that neither moves to this host.
    const bool holder = gw.host == host_.host;
    const MacAddress out_mac = holder ? gw.mac : distributedSnatMac(host_.host);
    auto mac = resolve(*ext, choice.nexthop, out_mac, holder ? *from : IpAddress::v4(0, 0, 0, 0));
    if (!mac) return;
    meter(r, /*ingress=*/false);
    setEth(out_mac, *mac);
    // A load balancer's reply translated back to its floating IP on this
    // host leaves as it is.
    const topology::FloatingIp* from_floating =
        key_.eth_type == ethertype::kIpv4 ? t_.floatingIpAt(src()) : nullptr;
    if (key_.eth_type == ethertype::kIpv4) tags_.push_back(floatingTag(src()));
    if (from_floating != nullptr && from_floating->router_key == r.key) {
      note(
          [&] { return src().toString() + " is a floating IP of " + routerText(r) + ": no SNAT"; });
    } else if (gw.snat && snat_here && key_.eth_type == ethertype::kIpv4 &&
               !isRouterAddress(r, src())) {
      note([&] {
        return "SNAT: " + src().toString() + " masqueraded as " + gw.ips.front().toString();
      });
      Action& a = act(ActionKind::Snat);
      a.address = toV4(gw.ips.front());
      a.port_first = gw.central_first;
      a.port_last = gw.central_last;
      if (const topology::SnatLease* l = gw.leaseOf(host_.host);
          l != nullptr && ctx_.stage == Stage::FromPort) {
        a.port_first = l->first;
        a.port_last = l->last;
        note([&] {
          return "distributed SNAT: ports " + std::to_string(l->first) + "-" +
                 std::to_string(l->last) + " leased to this host";
        });
      }
      // The inside host opens the connection: its destination port names
      // the helper.
      if (const auto* h = r.helperFor(key_.ip_proto, key_.tp_dst); h != nullptr && isL4()) {
        a.helper = h->kind;
        note([&] { return "conntrack helper " + helperText(*h) + " of " + routerText(r); });
      }
    }
    uplink(*ext);
  }

  bool isL4() const {
    return key_.ip_proto == packet::ipproto::kTcp || key_.ip_proto == packet::ipproto::kUdp;
  }

  static std::string helperText(const topology::NatHelper& h) {
    return std::string(h.kind == topology::NatHelperKind::Ftp ? "ftp" : "tftp") + " (" +
           (h.protocol == packet::ipproto::kTcp ? "tcp" : "udp") + "/" + std::to_string(h.port) +
           ")";
  }

  // A floating IP's FTP control connection, either way and whichever end
  // is the VM (client or server): its addresses in the payload follow the
  // translation. TFTP needs nothing of a 1:1 translation.
  std::optional<topology::NatHelperKind> ftpHelper(const Router& r) {
    if (key_.ip_proto != packet::ipproto::kTcp) return std::nullopt;
    for (uint16_t port : {key_.tp_dst, key_.tp_src}) {
      const auto* h = r.helperFor(key_.ip_proto, port);
      if (h != nullptr && h->kind == topology::NatHelperKind::Ftp) {
        note([&] { return "conntrack helper " + helperText(*h) + " of " + routerText(r); });
        return h->kind;
      }
    }
    return std::nullopt;
  }

  // The MAC of an external next hop, learned from ARP; when unknown, an ARP
  // request goes out of the uplink and the packet is dropped.
  std::optional<MacAddress> resolve(const Switch& ext, const IpAddress& nexthop,
                                    const MacAddress& from_mac, const IpAddress& from_ip) {
    tags_.push_back(neighborTag(ext.key, nexthop));
    if (auto mac = neighbors_.find(ext.key, nexthop)) {
      note([&] { return "next hop " + nexthop.toString() + " is at " + mac->toString(); });
      return mac;
    }
    note([&] {
      return "next hop " + nexthop.toString() +
             " unknown: " + (nexthop.family == 4 ? "ARP request" : "neighbour solicitation") +
             " sent";
    });
    d_.actions.clear();
    if (nexthop.family == from_ip.family && host_.hasUplink(ext.physical_network)) {
      noCache();
      Action& a = act(ActionKind::Emit);
      a.frame = nexthop.family == 4 ? arpRequest(from_mac, toV4(from_ip), toV4(nexthop))
                                    : neighborSolicitation(from_mac, from_ip, nexthop);
      a.switch_key = ext.key;  // out of this switch's uplink
    }
    noCache();
    drop(DropReason::NeighborUnresolved);
    return std::nullopt;
  }

  // A packet for the router itself: echo replies, unreachable ports.
  void routerAddress(const Router& r, const MacAddress& in_mac, const IpAddress& to) {
    noCache();
    if ((key_.ip_proto == ipproto::kIcmp && key_.tp_src == 8) || isIcmpv6(128)) {
      note([&] { return routerText(r) + ": echo reply from " + to.toString(); });
      return emit(echoReply(frame_, parsed_, in_mac));
    }
    if (key_.ip_proto == ipproto::kUdp) {
      note([&] { return routerText(r) + ": no service on udp " + std::to_string(key_.tp_dst); });
      icmpBack(in_mac, to, {3, 3}, {1, 4});
      return drop(DropReason::RouterAddressNotServed);
    }
    if (key_.ip_proto == ipproto::kTcp && (key_.tcp_flags & packet::TcpHeader::kRst) == 0) {
      note([&] {
        return routerText(r) + ": no service on tcp " + std::to_string(key_.tp_dst) + ", reset";
      });
      emit(tcpReset(frame_, parsed_, in_mac));
      return drop(DropReason::RouterAddressNotServed);
    }
    note([&] { return routerText(r) + ": " + to.toString() + " is the router's own address"; });
    drop(DropReason::RouterAddressNotServed);
  }

  void checkMtu(const Switch& out, const MacAddress& in_mac, const IpAddress& in_ip) {
    note([&] {
      return switchText(out) + ": MTU " + std::to_string(out.mtu) + ", checked per packet";
    });
    Action& a = act(ActionKind::CheckMtu);
    a.mtu = out.mtu;
    a.eth_src = in_mac;
    a.from = in_ip;
  }
  void decrementTtl() {
    act(ActionKind::DecrementTtl);
    --key_.ip_ttl;
  }
  void setEth(const MacAddress& s, const MacAddress& d) {
    Action& a = act(ActionKind::SetEth);
    a.eth_src = s;
    a.eth_dst = d;
    key_.eth_src = s;
    key_.eth_dst = d;
  }

  const topology::Topology& t_;
  const HostContext& host_;
  const Neighbors& neighbors_;
  const Context& ctx_;
  std::span<const uint8_t> frame_;
  const packet::ParsedPacket& parsed_;
  FlowKey key_;  // as rewritten so far
  Trace* trace_;
  Decision d_{};
  std::vector<Tag> tags_{};
  Sender sender_{};
  int hops_ = 0;
};

}  // namespace

bool HostContext::hasUplink(const std::string& physical_network) const {
  return !physical_network.empty() &&
         std::find(uplinks.begin(), uplinks.end(), physical_network) != uplinks.end();
}

std::optional<Ipv4Address> metadataAddressOf(MetadataPeer peer) {
  if (peer.port == 0 || peer.port >= kMetadataMaxPorts || peer.index > 3) return std::nullopt;
  return Ipv4Address{packet::Be32::of(10u << 24 | peer.port << 2 | peer.index)};
}

std::optional<MetadataPeer> metadataPeerOf(Ipv4Address address) {
  uint32_t a = address.host();
  if (a >> 24 != 10) return std::nullopt;
  MetadataPeer peer{(a & 0x00ffffff) >> 2, static_cast<uint8_t>(a & 3)};
  if (peer.port == 0) return std::nullopt;
  return peer;
}

Tag tagOf(TagKind kind, uint64_t key) noexcept {
  // splitmix64 of the kind in the top byte and the key below.
  uint64_t x = (static_cast<uint64_t>(kind) << 56) ^ key;
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

namespace {
uint64_t addressKey(const IpAddress& ip) {
  uint64_t h = 1469598103934665603ULL ^ ip.family;
  for (uint8_t b : ip.bytes) h = (h ^ b) * 1099511628211ULL;
  return h;
}
}  // namespace

Tag neighborTag(uint32_t switch_key, const IpAddress& ip) noexcept {
  return tagOf(TagKind::Neighbor, addressKey(ip) ^ (uint64_t{switch_key} << 20));
}

Tag floatingTag(const IpAddress& external) noexcept {
  return tagOf(TagKind::FloatingAddress, addressKey(external));
}

std::vector<Tag> changedTags(const topology::Topology& before, const topology::Topology& after) {
  std::vector<Tag> tags;
  auto diff = [](const auto& a, const auto& b, auto&& changed) {
    for (const auto& [k, v] : a) {
      auto it = b.find(k);
      if (it == b.end()) {
        changed(&v, nullptr);
      } else if (!(it->second == v)) {
        changed(&v, &it->second);
      }
    }
    for (const auto& [k, v] : b) {
      if (!a.count(k)) changed(nullptr, &v);
    }
  };
  diff(before.switches(), after.switches(), [&](const Switch* a, const Switch* b) {
    tags.push_back(tagOf(TagKind::Switch, a != nullptr ? a->key : b->key));
  });
  diff(before.ports(), after.ports(), [&](const Port* a, const Port* b) {
    for (const Port* p : {a, b}) {
      if (p == nullptr) continue;
      tags.push_back(tagOf(TagKind::Port, p->key));
      tags.push_back(tagOf(TagKind::Switch, p->switch_key));
      for (uint32_t g : p->groups) tags.push_back(tagOf(TagKind::Group, g));
    }
  });
  diff(before.routers(), after.routers(), [&](const Router* a, const Router* b) {
    for (const Router* r : {a, b}) {
      if (r == nullptr) continue;
      tags.push_back(tagOf(TagKind::Router, r->key));
      for (const auto& i : r->interfaces) tags.push_back(tagOf(TagKind::Switch, i.switch_key));
      if (r->gateway) tags.push_back(tagOf(TagKind::Switch, r->gateway->switch_key));
    }
  });
  diff(before.groups(), after.groups(), [&](const SecurityGroup* a, const SecurityGroup* b) {
    tags.push_back(tagOf(TagKind::Group, a != nullptr ? a->key : b->key));
  });
  diff(before.hosts(), after.hosts(), [&](const topology::Host* a, const topology::Host* b) {
    tags.push_back(tagOf(TagKind::Host, a != nullptr ? a->key : b->key));
  });
  std::map<IpAddress, const topology::FloatingIp*> fa, fb;
  for (const auto& f : before.floatingIps()) fa[f.external] = &f;
  for (const auto& f : after.floatingIps()) fb[f.external] = &f;
  auto fip = [&](const topology::FloatingIp* f) {
    tags.push_back(floatingTag(f->external));
    tags.push_back(tagOf(TagKind::Port, f->port_key));
    // What its forwardings' ports send is looked up by them.
    for (const auto& pf : f->forwardings) tags.push_back(tagOf(TagKind::Port, pf.port_key));
  };
  for (const auto& [ext, f] : fa) {
    auto it = fb.find(ext);
    if (it == fb.end() || !(*it->second == *f)) {
      fip(f);
      if (it != fb.end()) fip(it->second);
    }
  }
  for (const auto& [ext, f] : fb) {
    if (!fa.count(ext)) fip(f);
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

Simulation Simulator::run(const Context& ctx, std::span<const uint8_t> frame,
                          const packet::ParsedPacket& parsed, Trace* trace) const {
  return Walk(topology_, host_, neighbors_, ctx, frame, parsed, trace).run();
}

}  // namespace canopy::datapath::simulator
