#include "trace/trace.h"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "base/clock.h"
#include "datapath/packet/builder.h"
#include "datapath/packet/describe.h"
#include "datapath/packet/dhcp.h"
#include "datapath/packet/parser.h"
#include "datapath/pipeline/datapath.h"
#include "southbound/keys.h"
#include "southbound/view.h"

namespace canopy::trace {
namespace {

namespace packet = datapath::packet;
namespace pipeline = datapath::pipeline;
namespace topology = datapath::topology;
using datapath::DropReason;
using model::stringAt;
using packet::Ipv4Address;
using packet::MacAddress;
using pipeline::Ingress;
using pipeline::Outputs;
using topology::IpAddr;

// Stands in for external neighbours, whose MACs only agents learn (by
// ARP): RFC 7042's documentation range.
constexpr MacAddress kPlaceholderMac{{0x00, 0x00, 0x5e, 0x00, 0x53, 0x01}};
constexpr uint16_t kDefaultSourcePort = 33000;
constexpr uint16_t kEchoId = 0x4354;  // "CT"
constexpr int kMaxHops = 64;

Error badRequest(std::string message) {
  return Error(Errc::InvalidArgument, std::move(message), "HTTPBadRequest");
}

Ipv4Address v4(const IpAddr& a) {
  return Ipv4Address::of(a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]);
}

std::string protocolName(Protocol p) {
  switch (p) {
    case Protocol::Tcp:
      return "tcp";
    case Protocol::Udp:
      return "udp";
    case Protocol::Icmp:
      return "icmp";
    case Protocol::Arp:
      return "arp";
    case Protocol::Dhcp:
      return "dhcp";
  }
  return "?";
}

// A port's name and id as traces show them: "vm1 (id)" or "id".
std::string portLabel(const topology::Port& p) {
  return p.name.empty() ? p.id : p.name + " (" + p.id + ")";
}

// One host as the trace runs it: its own view and its own Datapath.
struct Host {
  std::string name;
  uint32_t key = 0;
  std::vector<std::string> uplinks;
  pipeline::Encapsulation encapsulation = pipeline::Encapsulation::Geneve;
  std::shared_ptr<const topology::Topology> topology;
  std::unique_ptr<pipeline::Datapath> datapath;
};

struct Step {
  std::string host;
  std::string text;
};

struct Delivered {
  Host* host = nullptr;
  Outputs::Kind kind = Outputs::Kind::Port;
  uint32_t port = 0;
  uint32_t uplink = 0;
  std::vector<uint8_t> bytes;
};

struct Walk {
  std::vector<Step> steps;
  std::vector<Delivered> outputs;
  DropReason last_drop = DropReason::None;
  std::string drop_host;
};

// The hosts of the cloud, each built when a packet first reaches it.
class Cloud {
 public:
  explicit Cloud(const state::Tables& tables) : tables_(tables) {
    for (const auto& [name, d] : tables.collection(southbound::kAgentsCollection)) {
      uint32_t key = southbound::keyOf(tables, southbound::KeyKind::Host, name);
      if (key != 0) names_[key] = name;
    }
  }

  Host* byName(const std::string& name) {
    for (const auto& [key, n] : names_) {
      if (n == name) return byKey(key);
    }
    return nullptr;
  }

  Host* byKey(uint32_t key) {
    if (auto it = hosts_.find(key); it != hosts_.end()) return it->second.get();
    auto name = names_.find(key);
    if (name == names_.end()) return nullptr;
    auto h = std::make_unique<Host>();
    h->name = name->second;
    h->key = key;
    const state::Document* agent = tables_.find(southbound::kAgentsCollection, h->name);
    for (const auto& p : agent->doc.value("physical_networks", Json::array())) {
      if (p.is_string()) h->uplinks.push_back(p.get<std::string>());
    }
    const Json encaps = agent->doc.value("encapsulations", Json::array());
    if (!encaps.empty() &&
        std::find(encaps.begin(), encaps.end(), Json("geneve")) == encaps.end()) {
      h->encapsulation = pipeline::Encapsulation::Vxlan;
    }
    southbound::HostView view = southbound::computeView(tables_, h->name);
    auto built = view.builder().build(1);
    if (!built) return nullptr;  // the agent would refuse this view too
    h->topology = std::move(*built);
    pipeline::Config config;
    config.host.host = key;
    config.host.uplinks = h->uplinks;
    config.encapsulation = h->encapsulation;
    h->datapath = std::make_unique<pipeline::Datapath>(clock_, std::move(config));
    h->datapath->setTopology(h->topology);
    // External next hops: agents learn them by ARP; the trace puts a
    // placeholder in their place.
    for (const auto& [rk, r] : h->topology->routers()) {
      if (r.gateway && r.gateway->nexthop) {
        h->datapath->learnNeighbor(r.gateway->switch_key, *r.gateway->nexthop, kPlaceholderMac);
      }
    }
    Host* raw = h.get();
    hosts_[key] = std::move(h);
    return raw;
  }

  const std::map<uint32_t, std::string>& names() const { return names_; }

  // Sends a frame in on a host and follows it through every tunnel.
  Walk send(Host& host, const Ingress& in, std::span<const uint8_t> frame, bool trace) {
    struct Pending {
      Host* host;
      Ingress in;
      std::vector<uint8_t> bytes;
    };
    std::deque<Pending> queue;
    queue.push_back({&host, in, {frame.begin(), frame.end()}});
    Walk walk;
    for (int hops = 0; !queue.empty() && hops < kMaxHops; ++hops) {
      Pending p = std::move(queue.front());
      queue.pop_front();
      Outputs out;
      datapath::simulator::Trace lines;
      auto before = p.host->datapath->counters().drops;
      p.host->datapath->process(p.in, p.bytes, out, trace ? &lines : nullptr);
      const auto& after = p.host->datapath->counters().drops;
      for (size_t r = 0; r < after.size(); ++r) {
        if (after[r] != before[r]) {
          walk.last_drop = static_cast<DropReason>(r);
          walk.drop_host = p.host->name;
        }
      }
      for (auto& l : lines) {
        if (l.find(kPlaceholderMac.toString()) != std::string::npos) {
          l += " (a placeholder: the agent learns the real MAC by ARP)";
        }
        walk.steps.push_back({p.host->name, std::move(l)});
      }
      for (const auto& item : out.items()) {
        auto bytes = out.bytes(item);
        if (item.kind == Outputs::Kind::Tunnel) {
          Host* next = byKey(item.host);
          if (next == nullptr) {
            walk.steps.push_back({p.host->name, "tunnel to host " + item.remote.toString() +
                                                    ": no agent there to follow it (a static "
                                                    "VTEP or an unknown host)"});
            walk.outputs.push_back({p.host, item.kind, 0, 0, {bytes.begin(), bytes.end()}});
            continue;
          }
          const topology::Host* sender = p.host->topology->findHost(p.host->key);
          queue.push_back({next,
                           Ingress::fromTunnel(item.encapsulation,
                                               sender != nullptr ? sender->tunnel_ip : IpAddr{}),
                           {bytes.begin(), bytes.end()}});
          continue;
        }
        walk.outputs.push_back(
            {p.host, item.kind, item.port, item.uplink, {bytes.begin(), bytes.end()}});
      }
    }
    return walk;
  }

 private:
  const state::Tables& tables_;
  SystemClock clock_;
  std::map<uint32_t, std::string> names_;
  std::map<uint32_t, std::unique_ptr<Host>> hosts_;
};

// Where a probe starts.
struct Origin {
  Host* host = nullptr;
  Ingress in{};
  MacAddress mac{};
  IpAddr ip{};
  const topology::Port* port = nullptr;  // a VM port; null for an outside host
  uint32_t switch_key = 0;
  std::string label;  // "port vm1 (id) on compute-1"
};

bool isArp(std::span<const uint8_t> frame, uint16_t operation, packet::ArpPacket* arp = nullptr) {
  packet::ParsedPacket p;
  if (packet::parse(frame, p) != DropReason::None || p.key.eth_type != packet::ethertype::kArp) {
    return false;
  }
  packet::ArpPacket a;
  if (!packet::load(frame, p.l3_offset, a) || a.operation.host() != operation) return false;
  if (arp != nullptr) *arp = a;
  return true;
}

// Resolves `target` by ARP from the origin, through the datapath, as the
// guest (or the outside host) would.
std::optional<MacAddress> resolve(Cloud& cloud, const Origin& o, const IpAddr& target) {
  auto frame = packet::PacketBuilder()
                   .eth(o.mac, MacAddress::broadcast())
                   .arp(1, o.mac, v4(o.ip), MacAddress{}, v4(target))
                   .build();
  Walk w = cloud.send(*o.host, o.in, frame, false);
  for (const auto& d : w.outputs) {
    packet::ArpPacket a;
    bool back = o.port != nullptr ? d.kind == Outputs::Kind::Port && d.port == o.port->key
                                  : d.kind == Outputs::Kind::Uplink && d.host == o.host;
    if (back && isArp(d.bytes, 2, &a) && a.sender_ip == v4(target)) return a.sender_mac;
  }
  return std::nullopt;
}

struct Built {
  std::vector<uint8_t> frame;
  std::string description;
  std::optional<std::string> refusal;  // why the probe cannot be sent (a finding, not an error)
  std::string reason;                  // and its drop reason
};

std::optional<IpAddr> nextHop(const topology::Topology& t, const Origin& o, const IpAddr& dst) {
  const topology::Switch* sw = t.findSwitch(o.switch_key);
  if (sw == nullptr) return std::nullopt;
  for (const auto& s : sw->subnets) {
    if (s.cidr.contains(dst)) return dst;
  }
  for (const auto& s : sw->subnets) {
    if (!s.cidr.contains(o.ip)) continue;
    for (const auto& r : s.host_routes) {
      if (r.destination.contains(dst)) return r.nexthop;
    }
    if (s.gateway) return s.gateway;
  }
  return std::nullopt;
}

Built buildProbe(Cloud& cloud, const Origin& o, const Probe& probe) {
  Built b;
  if (probe.protocol == Protocol::Dhcp) {
    packet::DhcpOptions options;
    options.addByte(53, 1);  // DHCPDISCOVER
    auto payload = packet::dhcpRequest(o.mac, 0x43616e6f, options);
    b.frame = packet::PacketBuilder()
                  .eth(o.mac, MacAddress::broadcast())
                  .ipv4(Ipv4Address::of(0, 0, 0, 0), Ipv4Address::of(255, 255, 255, 255))
                  .udp(68, 67)
                  .payload(payload)
                  .build();
    b.description = "dhcp discover from " + o.mac.toString();
    return b;
  }
  auto dst = IpAddr::parse(probe.destination_ip);
  if (probe.protocol == Protocol::Arp) {
    b.frame = packet::PacketBuilder()
                  .eth(o.mac, MacAddress::broadcast())
                  .arp(1, o.mac, v4(o.ip), MacAddress{}, v4(*dst))
                  .build();
    b.description = "arp who-has " + dst->toString() + " tell " + o.ip.toString();
    return b;
  }
  uint16_t sport = probe.source_port != 0 ? probe.source_port : kDefaultSourcePort;
  switch (probe.protocol) {
    case Protocol::Tcp:
      b.description = "tcp " + o.ip.toString() + ":" + std::to_string(sport) + " -> " +
                      dst->toString() + ":" + std::to_string(probe.destination_port) + " [SYN]";
      break;
    case Protocol::Udp:
      b.description = "udp " + o.ip.toString() + ":" + std::to_string(sport) + " -> " +
                      dst->toString() + ":" + std::to_string(probe.destination_port);
      break;
    default:
      b.description = "icmp echo request " + o.ip.toString() + " -> " + dst->toString();
  }
  // The next hop's MAC, as the sender's ARP would learn it.
  std::optional<IpAddr> hop = *dst;
  if (o.port != nullptr) {
    hop = nextHop(*o.host->topology, o, *dst);
    if (!hop) {
      b.refusal = dst->toString() + " is not on the port's subnets and its subnet has no gateway";
      b.reason = "no_route";
      return b;
    }
  }
  auto mac = resolve(cloud, o, *hop);
  if (!mac && *hop != *dst) {
    b.refusal = "no router answers for " + hop->toString() +
                ", the gateway of the sender's subnet: no router interface has that address";
    b.reason = "no_route";
    return b;
  }
  if (!mac) {
    b.refusal = "ARP for " + hop->toString() + " gets no answer: nothing on this network has it";
    b.reason = "unknown_address";
    return b;
  }
  b.description += " (next hop " + hop->toString() + " is at " + mac->toString() + ")";
  packet::PacketBuilder pb;
  pb.eth(o.mac, *mac).ipv4(v4(o.ip), v4(*dst), probe.ttl);
  switch (probe.protocol) {
    case Protocol::Tcp:
      pb.tcp(sport, probe.destination_port, packet::TcpHeader::kSyn, 1000);
      break;
    case Protocol::Udp:
      pb.udp(sport, probe.destination_port).payload("canopy trace");
      break;
    default:
      pb.icmp(8, 0, kEchoId, 1).payload("canopy trace");
  }
  b.frame = pb.build();
  return b;
}

// What the receiver of `frame` answers: addresses and ports swapped, a
// SYN answered with SYN+ACK, an echo request with its reply.
std::optional<std::vector<uint8_t>> answerTo(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  if (packet::parse(frame, p) != DropReason::None || p.key.eth_type != packet::ethertype::kIpv4) {
    return std::nullopt;
  }
  const auto& k = p.key;
  auto a = [](const std::array<uint8_t, 16>& b) { return Ipv4Address::of(b[0], b[1], b[2], b[3]); };
  packet::PacketBuilder b;
  b.eth(k.eth_dst, k.eth_src);
  if (k.vlan_tci != 0) b.vlan(static_cast<uint16_t>(k.vlan_tci & 0xfff));
  b.ipv4(a(k.ip_dst), a(k.ip_src));
  switch (k.ip_proto) {
    case packet::ipproto::kTcp:
      b.tcp(k.tp_dst, k.tp_src, packet::TcpHeader::kSyn | packet::TcpHeader::kAck, 5000, 1001);
      break;
    case packet::ipproto::kUdp:
      b.udp(k.tp_dst, k.tp_src).payload("canopy trace reply");
      break;
    case packet::ipproto::kIcmp:
      if (k.tp_src != 8) return std::nullopt;
      b.icmp(0, 0, k.icmp_id, 1).payload("canopy trace");
      break;
    default:
      return std::nullopt;
  }
  return b.build();
}

Json stepsJson(const std::vector<Step>& steps) {
  Json out = Json::array();
  for (const auto& s : steps) out.push_back({{"host", s.host}, {"text", s.text}});
  return out;
}

std::string uplinkName(const Host& h, uint32_t index) {
  return index < h.uplinks.size() ? h.uplinks[index] : "#" + std::to_string(index);
}

// The walk's outputs, verdict and summary. `origin` tells answers (frames
// back to the sender) from deliveries; `arp_probe`, whether ARP requests
// out of an uplink are the point or only the datapath asking for a next hop.
Json verdictJson(const Walk& w, const Origin& origin, bool arp_probe, const Delivered** first) {
  Json outputs = Json::array();
  std::string verdict, summary;
  *first = nullptr;
  std::string waiting;
  for (const auto& d : w.outputs) {
    Json o = {{"host", d.host->name}, {"frame", packet::describeFrame(d.bytes)}};
    bool back = origin.port != nullptr ? d.kind == Outputs::Kind::Port && d.port == origin.port->key
                                       : d.kind == Outputs::Kind::Uplink && d.host == origin.host;
    if (d.kind == Outputs::Kind::Port) {
      o["kind"] = "port";
      const topology::Port* p = d.host->topology->findPort(d.port);
      o["port_id"] = p != nullptr ? p->id : "";
      o["port_name"] = p != nullptr ? p->name : "";
      if (!back && verdict.empty() && p != nullptr) {
        verdict = "delivered";
        summary = "delivered to port " + portLabel(*p) + " on " + d.host->name;
        *first = &d;
      }
    } else if (d.kind == Outputs::Kind::Uplink) {
      o["kind"] = "uplink";
      o["uplink"] = uplinkName(*d.host, d.uplink);
      packet::ArpPacket arp;
      if (!arp_probe && isArp(d.bytes, 1, &arp)) {
        waiting = "waits on " + d.host->name + " for the MAC of " + arp.target_ip.toString() +
                  ": an ARP request goes out of uplink " + uplinkName(*d.host, d.uplink);
      } else if (!back && verdict.empty()) {
        verdict = "delivered";
        summary = "leaves " + d.host->name + " by uplink " + uplinkName(*d.host, d.uplink) + ": " +
                  packet::describeFrame(d.bytes);
        *first = &d;
      }
    } else {
      o["kind"] = "tunnel";
    }
    if (back && verdict.empty()) {
      verdict = "answered";
      summary = "answered on " + d.host->name + ": " + packet::describeFrame(d.bytes);
    }
    outputs.push_back(std::move(o));
  }
  Json result = {{"steps", stepsJson(w.steps)}, {"outputs", std::move(outputs)}};
  if (verdict.empty()) {
    verdict = "dropped";
    if (!waiting.empty()) {
      summary = waiting;
      result["drop_reason"] = "next_hop_unknown";
    } else if (w.last_drop != DropReason::None) {
      summary =
          "dropped on " + w.drop_host + ": " + std::string(datapath::dropReasonText(w.last_drop));
      result["drop_reason"] = std::string(datapath::dropReasonName(w.last_drop));
    } else {
      summary = "goes nowhere";
    }
  }
  result["verdict"] = verdict;
  result["summary"] = summary;
  return result;
}

Json refused(const std::string& request, const std::string& why, const std::string& reason) {
  return {{"request", request},   {"steps", Json::array()}, {"outputs", Json::array()},
          {"verdict", "dropped"}, {"drop_reason", reason},  {"summary", why}};
}

// Finds the probe's origin, or a finding (a trace that ends before it
// starts) in `finding`, or an error for a source that does not exist.
Result<Origin> findOrigin(const state::Tables& t, Cloud& cloud, const Request& r,
                          std::optional<Json>& finding) {
  const Source& s = r.source;
  std::string port_id = s.port_id;
  if (!s.device_id.empty()) {
    std::vector<std::string> ports;
    for (const auto& id : t.lookup("ports.device", s.device_id)) {
      const state::Document* d = t.find("ports", id);
      if (d != nullptr && stringAt(d->doc, "device_owner").rfind("network:", 0) != 0) {
        ports.push_back(id);
      }
    }
    if (ports.empty()) {
      return Error(Errc::NotFound, "No port has device_id " + s.device_id + ".", "PortNotFound");
    }
    if (ports.size() > 1) {
      std::string list;
      for (const auto& p : ports) list += (list.empty() ? "" : ", ") + p;
      return badRequest("Device " + s.device_id + " has " + std::to_string(ports.size()) +
                        " ports (" + list + "); trace one of them by port_id.");
    }
    port_id = ports.front();
  }
  Origin o;
  if (port_id.empty()) {
    // An address on a network: a port's, or an outside host's on an
    // external network.
    const state::Document* net = t.find("networks", s.network_id);
    if (net == nullptr) {
      return Error(Errc::NotFound, "Network " + s.network_id + " could not be found.",
                   "NetworkNotFound");
    }
    for (const auto& id : t.lookup("ports.network", s.network_id)) {
      const state::Document* d = t.find("ports", id);
      if (d == nullptr) continue;
      for (const auto& f : d->doc.value("fixed_ips", Json::array())) {
        if (stringAt(f, "ip_address") == s.ip_address) port_id = id;
      }
    }
    if (port_id.empty()) {
      if (!net->doc.value("router:external", false)) {
        return badRequest("No port on network " + s.network_id + " has address " + s.ip_address +
                          "; only an external network has outside hosts to trace from.");
      }
      return Origin{};  // an outside host: the caller finds where it enters
    }
  }
  const state::Document* port = t.find("ports", port_id);
  if (port == nullptr) {
    return Error(Errc::NotFound, "Port " + port_id + " could not be found.", "PortNotFound");
  }
  std::string host_name = stringAt(port->doc, "binding:host_id");
  std::string label = "port " + (stringAt(port->doc, "name").empty()
                                     ? port_id
                                     : stringAt(port->doc, "name") + " (" + port_id + ")");
  if (host_name.empty()) {
    finding =
        refused(label, label + " is bound to no host: no agent sends its packets", "port_unbound");
    return o;
  }
  o.host = cloud.byName(host_name);
  if (o.host == nullptr) {
    finding = refused(
        label + " on " + host_name,
        "host " + host_name + " has no registered agent: nothing forwards " + label + "'s packets",
        "host_unknown");
    return o;
  }
  uint32_t key = southbound::keyOf(t, southbound::KeyKind::Port, port_id);
  o.port = o.host->topology->findPort(key);
  if (o.port == nullptr) {
    return Error(Errc::Unavailable,
                 "Port " + port_id + " is not in its host's view yet; try again.",
                 "ServiceUnavailable");
  }
  o.in = Ingress::fromPort(o.port->key);
  o.mac = o.port->mac;
  o.switch_key = o.port->switch_key;
  o.label = "port " + portLabel(*o.port) + " on " + o.host->name;
  for (const auto& ip : o.port->ips) {
    if (ip.family == 4) {
      o.ip = ip;
      break;
    }
  }
  if (r.probe.protocol != Protocol::Dhcp && o.ip.family != 4) {
    return badRequest("Port " + port_id + " has no IPv4 address to send from.");
  }
  return o;
}

// An outside host at `ip` on external network `network_id`: it enters by
// the uplink of whichever host answers its ARP for the destination.
std::optional<Origin> findOutside(const state::Tables& t, Cloud& cloud, const Request& r,
                                  std::string& why) {
  const state::Document* net = t.find("networks", r.source.network_id);
  std::string physnet = stringAt(net->doc, "provider:physical_network");
  uint32_t sw = southbound::keyOf(t, southbound::KeyKind::Network, r.source.network_id);
  auto ip = IpAddr::parse(r.source.ip_address);
  auto dst = IpAddr::parse(r.probe.destination_ip);
  if (physnet.empty()) {
    why = "network " + r.source.network_id + " has no physical network: no uplink leads to it";
    return std::nullopt;
  }
  std::vector<uint32_t> keys;
  for (const auto& [key, name] : cloud.names()) keys.push_back(key);
  bool any = false;
  for (uint32_t key : keys) {
    Host* h = cloud.byKey(key);
    if (h == nullptr) continue;
    auto up = std::find(h->uplinks.begin(), h->uplinks.end(), physnet);
    if (up == h->uplinks.end() || h->topology->findSwitch(sw) == nullptr) continue;
    any = true;
    Origin o;
    o.host = h;
    o.in = Ingress::fromUplink(static_cast<uint32_t>(up - h->uplinks.begin()));
    o.mac = kPlaceholderMac;
    o.ip = *ip;
    o.switch_key = sw;
    o.label = "outside host " + ip->toString() + " on uplink " + physnet + " of " + h->name;
    if (r.probe.protocol == Protocol::Arp || r.probe.protocol == Protocol::Dhcp) return o;
    if (resolve(cloud, o, *dst)) return o;
  }
  why = any ? "no host answers ARP for " + dst->toString() + " on physical network " + physnet
            : "no host has an uplink to physical network " + physnet;
  return std::nullopt;
}

}  // namespace

Result<Request> parseRequest(const Json& body) {
  const Json* t = body.is_object() && body.contains("trace") ? &body["trace"] : nullptr;
  if (t == nullptr || !t->is_object()) return badRequest("Request body needs a 'trace' object.");
  Request r;
  const Json source = t->value("source", Json());
  const Json packet = t->value("packet", Json());
  if (!source.is_object()) return badRequest("trace.source must be an object.");
  if (!packet.is_object()) return badRequest("trace.packet must be an object.");
  r.source.port_id = stringAt(source, "port_id");
  r.source.device_id = stringAt(source, "device_id");
  r.source.ip_address = stringAt(source, "ip_address");
  r.source.network_id = stringAt(source, "network_id");
  int kinds = !r.source.port_id.empty() + !r.source.device_id.empty() +
              (!r.source.ip_address.empty() || !r.source.network_id.empty());
  if (kinds != 1) {
    return badRequest(
        "trace.source needs exactly one of port_id, device_id, or ip_address with network_id.");
  }
  if (!r.source.ip_address.empty() || !r.source.network_id.empty()) {
    auto ip = IpAddr::parse(r.source.ip_address);
    if (!ip || ip->family != 4 || r.source.network_id.empty()) {
      return badRequest("trace.source needs an IPv4 ip_address and a network_id together.");
    }
  }
  static const std::map<std::string, Protocol> kProtocols = {{"tcp", Protocol::Tcp},
                                                             {"udp", Protocol::Udp},
                                                             {"icmp", Protocol::Icmp},
                                                             {"arp", Protocol::Arp},
                                                             {"dhcp", Protocol::Dhcp}};
  auto proto = kProtocols.find(stringAt(packet, "protocol"));
  if (proto == kProtocols.end()) {
    return badRequest("trace.packet.protocol must be one of tcp, udp, icmp, arp, dhcp.");
  }
  r.probe.protocol = proto->second;
  auto number = [&](const char* name, int64_t min, int64_t max,
                    int64_t fallback) -> Result<int64_t> {
    auto it = packet.find(name);
    if (it == packet.end() || it->is_null()) return fallback;
    if (!it->is_number_integer() || it->get<int64_t>() < min || it->get<int64_t>() > max) {
      return badRequest("trace.packet." + std::string(name) + " must be an integer from " +
                        std::to_string(min) + " to " + std::to_string(max) + ".");
    }
    return it->get<int64_t>();
  };
  bool ports = r.probe.protocol == Protocol::Tcp || r.probe.protocol == Protocol::Udp;
  auto dport = number("destination_port", 1, 65535, 0);
  auto sport = number("source_port", 1, 65535, 0);
  auto ttl = number("ttl", 1, 255, 64);
  if (!dport) return std::move(dport).error();
  if (!sport) return std::move(sport).error();
  if (!ttl) return std::move(ttl).error();
  if (ports && *dport == 0)
    return badRequest("trace.packet.destination_port is required for tcp and udp.");
  r.probe.destination_port = static_cast<uint16_t>(*dport);
  r.probe.source_port = static_cast<uint16_t>(*sport);
  r.probe.ttl = static_cast<uint8_t>(*ttl);
  r.probe.destination_ip = stringAt(packet, "destination_ip");
  if (r.probe.protocol != Protocol::Dhcp) {
    auto dst = IpAddr::parse(r.probe.destination_ip);
    if (!dst || dst->family != 4) {
      return badRequest("trace.packet.destination_ip must be an IPv4 address.");
    }
  }
  auto reply = t->find("reply");
  if (reply != t->end() && !reply->is_null() && !reply->is_boolean()) {
    return badRequest("trace.reply must be a boolean.");
  }
  r.reply = reply != t->end() && reply->is_boolean() && reply->get<bool>();
  if (r.reply && (r.probe.protocol == Protocol::Arp || r.probe.protocol == Protocol::Dhcp)) {
    return badRequest("A reply is traced for tcp, udp and icmp probes only.");
  }
  return r;
}

Result<Json> run(const state::Tables& tables, const Request& request) {
  Cloud cloud(tables);
  std::optional<Json> finding;
  auto found = findOrigin(tables, cloud, request, finding);
  if (!found) return std::move(found).error();
  if (finding) return *finding;
  Origin origin = *found;
  if (origin.host == nullptr) {
    std::string why;
    auto outside = findOutside(tables, cloud, request, why);
    std::string label = "outside host " + request.source.ip_address;
    if (!outside) return refused(label, why, "no_entry");
    origin = *outside;
  }
  Built probe = buildProbe(cloud, origin, request.probe);
  std::string described = protocolName(request.probe.protocol) == "dhcp"
                              ? probe.description + " on " + origin.label
                              : probe.description + " from " + origin.label;
  if (probe.refusal) return refused(described, *probe.refusal, probe.reason);
  Walk walk = cloud.send(*origin.host, origin.in, probe.frame, true);
  const Delivered* delivered = nullptr;
  Json result = verdictJson(walk, origin, request.probe.protocol == Protocol::Arp, &delivered);
  result["request"] = described;
  if (!request.reply) return result;
  if (delivered == nullptr) {
    result["reply"] = refused("reply", "nothing to answer: the request was not delivered", "none");
    return result;
  }
  auto answer = answerTo(delivered->bytes);
  if (!answer) {
    result["reply"] = refused("reply", "the delivered frame has no reply to trace", "none");
    return result;
  }
  Origin back;
  back.host = delivered->host;
  if (delivered->kind == Outputs::Kind::Port) {
    back.port = delivered->host->topology->findPort(delivered->port);
    back.in = Ingress::fromPort(delivered->port);
  } else {
    back.in = Ingress::fromUplink(delivered->uplink);
  }
  Walk reply = cloud.send(*back.host, back.in, *answer, true);
  const Delivered* ignored = nullptr;
  Json r = verdictJson(reply, back, false, &ignored);
  // The reply is home when it reaches the probe's origin.
  if (ignored != nullptr) {
    bool home = origin.port != nullptr
                    ? ignored->kind == Outputs::Kind::Port && ignored->port == origin.port->key
                    : ignored->kind == Outputs::Kind::Uplink;
    if (!home) r["summary"] = r["summary"].get<std::string>() + " (not the probe's origin)";
  }
  r["request"] =
      packet::describeFrame(*answer) + " from " +
      (back.port != nullptr ? "port " + portLabel(*back.port) + " on " + back.host->name
                            : "outside, by uplink " + uplinkName(*back.host, delivered->uplink) +
                                  " of " + back.host->name);
  result["reply"] = std::move(r);
  return result;
}

}  // namespace canopy::trace
