#include "trace/trace.h"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "base/clock.h"
#include "datapath/fabric/fabric.h"
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

// Stands in for external neighbours, whose MACs only agents learn (by
// ARP): RFC 7042's documentation range.
constexpr MacAddress kPlaceholderMac{{0x00, 0x00, 0x5e, 0x00, 0x53, 0x01}};
constexpr uint16_t kDefaultSourcePort = 33000;
constexpr uint16_t kEchoId = 0x4354;  // "CT"
constexpr int kMaxHops = 64;

Error badRequest(std::string message) {
  return Error(Errc::InvalidArgument, std::move(message), "HTTPBadRequest");
}

Ipv4Address v4(const IpAddress& a) { return Ipv4Address::of(a); }

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

// One host as the trace runs it: its uplinks and the topology its datapath
// runs (on the cloud's fabric).
struct Host {
  std::string name;
  uint32_t key = 0;
  std::vector<std::string> uplinks;
  const topology::Topology* topology = nullptr;
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

// The captured hosts, each with its own datapath on one fabric.
class Cloud {
 public:
  Cloud(const Clock& clock, const Capture& captured) : fabric_(clock, kMaxHops) {
    for (const auto& c : captured.hosts) {
      auto built = c.view.builder().build(1);
      if (!built) continue;  // the agent would refuse this view too
      pipeline::Config config;
      config.host.host = c.key;
      config.host.uplinks = c.agent.physical_networks;
      config.offer_flows = c.agent.fast_path;  // the trace says what it would run
      config.encapsulation =
          c.agent.takesGeneve() ? pipeline::Encapsulation::Geneve : pipeline::Encapsulation::Vxlan;
      pipeline::Datapath& dp = fabric_.addHost(c.key, c.agent.host, std::move(config), *built);
      // External next hops: agents learn them by ARP; the trace puts a
      // placeholder in their place.
      for (const auto& n : c.neighbors) dp.learnNeighbor(n.switch_key, n.ip, n.mac);
      for (const auto& [rk, r] : (*built)->routers()) {
        if (!r.gateway) continue;
        for (const auto& hop : {r.gateway->nexthop, r.gateway->nexthop6}) {
          if (!hop) continue;
          bool learned = std::any_of(c.neighbors.begin(), c.neighbors.end(), [&](const auto& n) {
            return n.switch_key == r.gateway->switch_key && n.ip == *hop;
          });
          if (!learned) dp.learnNeighbor(r.gateway->switch_key, *hop, kPlaceholderMac);
        }
      }
      hosts_[c.key] = Host{.name = c.agent.host,
                           .key = c.key,
                           .uplinks = c.agent.physical_networks,
                           .topology = fabric_.topology(c.key)};
    }
  }

  Host* byName(const std::string& name) {
    for (auto& [key, h] : hosts_) {
      if (h.name == name) return &h;
    }
    return nullptr;
  }

  std::map<uint32_t, Host>& hosts() { return hosts_; }

  // Sends a frame in on a host and follows it through every tunnel.
  Walk send(Host& host, const Ingress& in, std::span<const uint8_t> frame, bool trace) {
    datapath::fabric::Walk w = fabric_.send(host.key, in, frame, trace);
    Walk walk;
    for (auto& s : w.steps) {
      if (s.text.find(kPlaceholderMac.toString()) != std::string::npos) {
        s.text += " (a placeholder: the agent learns the real MAC by ARP)";
      }
      walk.steps.push_back({fabric_.name(s.host), std::move(s.text)});
    }
    for (auto& o : w.outputs) {
      walk.outputs.push_back({&hosts_.at(o.host), o.kind, o.port, o.uplink, std::move(o.bytes)});
    }
    if (w.drop != DropReason::None) {
      walk.last_drop = w.drop;
      walk.drop_host = fabric_.name(w.drop_host);
    }
    return walk;
  }

 private:
  datapath::fabric::Fabric fabric_;
  std::map<uint32_t, Host> hosts_;
};

// Where a probe starts.
struct Origin {
  Host* host = nullptr;
  Ingress in{};
  MacAddress mac{};
  IpAddress ip{};
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
std::optional<MacAddress> resolve(Cloud& cloud, const Origin& o, const IpAddress& target) {
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

std::optional<IpAddress> nextHop(const topology::Topology& t, const Origin& o,
                                 const IpAddress& dst) {
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
  auto dst = IpAddress::parse(probe.destination_ip);
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
  std::optional<IpAddress> hop = *dst;
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

// Where the probe starts, as the model names it (capture's first half).
Result<void> findSource(const state::Tables& t, const Request& r, Capture& c) {
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
      c.outside = true;
      c.physical_network = stringAt(net->doc, "provider:physical_network");
      c.switch_key = southbound::keyOf(t, southbound::KeyKind::Network, s.network_id);
      if (c.physical_network.empty()) {
        c.finding =
            refused("outside host " + s.ip_address,
                    "network " + s.network_id + " has no physical network: no uplink leads to it",
                    "no_entry");
      }
      return ok();
    }
  }
  const state::Document* port = t.find("ports", port_id);
  if (port == nullptr) {
    return Error(Errc::NotFound, "Port " + port_id + " could not be found.", "PortNotFound");
  }
  c.port_id = port_id;
  c.host = stringAt(port->doc, "binding:host_id");
  c.port_key = southbound::keyOf(t, southbound::KeyKind::Port, port_id);
  std::string name = stringAt(port->doc, "name");
  c.port_label = "port " + (name.empty() ? port_id : name + " (" + port_id + ")");
  if (c.host.empty()) {
    c.finding =
        refused(c.port_label, c.port_label + " is bound to no host: no agent sends its packets",
                "port_unbound");
  } else if (t.find(southbound::kAgentsCollection, c.host) == nullptr ||
             southbound::keyOf(t, southbound::KeyKind::Host, c.host) == 0) {
    c.finding = refused(c.port_label + " on " + c.host,
                        "host " + c.host + " has no registered agent: nothing forwards " +
                            c.port_label + "'s packets",
                        "host_unknown");
  }
  return ok();
}

// The probe's origin on the cloud's hosts.
Result<Origin> findOrigin(Cloud& cloud, const Capture& c, const Request& r) {
  Origin o;
  o.host = cloud.byName(c.host);
  if (o.host == nullptr) {
    return Error(Errc::Unavailable, "Host " + c.host + "'s view cannot be built; try again.",
                 "ServiceUnavailable");
  }
  o.port = o.host->topology->findPort(c.port_key);
  if (o.port == nullptr) {
    return Error(Errc::Unavailable,
                 "Port " + c.port_id + " is not in its host's view yet; try again.",
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
    return badRequest("Port " + c.port_id + " has no IPv4 address to send from.");
  }
  return o;
}

// An outside host at the source's address on an external network: it
// enters by the uplink of whichever host answers its ARP for the
// destination.
std::optional<Origin> findOutside(Cloud& cloud, const Capture& c, const Request& r,
                                  std::string& why) {
  auto ip = IpAddress::parse(r.source.ip_address);
  auto dst = IpAddress::parse(r.probe.destination_ip);
  bool any = false;
  for (auto& [key, h] : cloud.hosts()) {
    auto up = std::find(h.uplinks.begin(), h.uplinks.end(), c.physical_network);
    if (up == h.uplinks.end() || h.topology->findSwitch(c.switch_key) == nullptr) continue;
    any = true;
    Origin o;
    o.host = &h;
    o.in = Ingress::fromUplink(static_cast<uint32_t>(up - h.uplinks.begin()));
    o.mac = kPlaceholderMac;
    o.ip = *ip;
    o.switch_key = c.switch_key;
    o.label =
        "outside host " + ip->toString() + " on uplink " + c.physical_network + " of " + h.name;
    if (r.probe.protocol == Protocol::Arp || r.probe.protocol == Protocol::Dhcp) return o;
    if (resolve(cloud, o, *dst)) return o;
  }
  why = any ? "no host answers ARP for " + dst->toString() + " on physical network " +
                  c.physical_network
            : "no host has an uplink to physical network " + c.physical_network;
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
    auto ip = IpAddress::parse(r.source.ip_address);
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
    auto dst = IpAddress::parse(r.probe.destination_ip);
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

Result<Capture> capture(const state::Tables& tables, const Request& request) {
  Capture c;
  if (auto found = findSource(tables, request, c); !found) return std::move(found).error();
  if (c.finding) return c;
  // The hosts the probe can reach: from where it starts, every host of the
  // views met on the way (a reply, and any tunnel, leads only to those).
  std::map<uint32_t, std::string> names;  // every agent's host, by key
  for (const auto& [name, d] : tables.collection(southbound::kAgentsCollection)) {
    if (uint32_t key = southbound::keyOf(tables, southbound::KeyKind::Host, name); key != 0) {
      names[key] = name;
    }
  }
  std::vector<uint32_t> pending;
  for (const auto& [key, name] : names) {
    if (c.outside ? model::Agent::fromJson(tables.find(southbound::kAgentsCollection, name)->doc)
                        .hasPhysicalNetwork(c.physical_network)
                  : name == c.host) {
      pending.push_back(key);
    }
  }
  std::set<uint32_t> seen(pending.begin(), pending.end());
  while (!pending.empty()) {
    uint32_t key = pending.back();
    pending.pop_back();
    const std::string& name = names.at(key);
    CapturedHost h{
        .key = key,
        .agent = model::Agent::fromJson(tables.find(southbound::kAgentsCollection, name)->doc),
        .view = southbound::computeView(tables, name)};
    for (const auto& [other, host] : h.view.hosts) {
      if (names.contains(other) && seen.insert(other).second) pending.push_back(other);
    }
    c.hosts.push_back(std::move(h));
  }
  return c;
}

Result<Json> run(const Clock& clock, const Capture& captured, const Request& request) {
  if (captured.finding) return *captured.finding;
  Cloud cloud(clock, captured);
  Origin origin;
  if (captured.outside) {
    std::string why;
    auto outside = findOutside(cloud, captured, request, why);
    if (!outside) return refused("outside host " + request.source.ip_address, why, "no_entry");
    origin = *outside;
  } else {
    auto found = findOrigin(cloud, captured, request);
    if (!found) return std::move(found).error();
    origin = *found;
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
