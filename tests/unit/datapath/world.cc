#include "world.h"

#include <deque>

#include "datapath/packet/dhcp.h"

namespace canopy::datapath::testing {

using namespace world;
using topology::Direction;

namespace {

std::string v4Text(const std::array<uint8_t, 16>& b) {
  return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." +
         std::to_string(b[3]);
}

std::string tcpFlags(uint8_t f) {
  std::string s;
  if (f & packet::TcpHeader::kSyn) s += 'S';
  if (f & packet::TcpHeader::kFin) s += 'F';
  if (f & packet::TcpHeader::kRst) s += 'R';
  if (f & packet::TcpHeader::kPsh) s += 'P';
  if (f & packet::TcpHeader::kAck) s += '.';
  return s;
}

}  // namespace

std::string describeFrame(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  if (auto why = packet::parse(frame, p); why != DropReason::None) {
    return "unparsable: " + std::string(dropReasonName(why));
  }
  const auto& k = p.key;
  std::string s = k.eth_src.toString() + " > " + k.eth_dst.toString();
  if (k.vlan_tci != 0) s += " vlan " + std::to_string(k.vlan_tci & 0xfff);
  if (k.eth_type == packet::ethertype::kArp) {
    packet::ArpPacket arp;
    if (!packet::load(frame, p.l3_offset, arp)) return s + " arp?";
    if (arp.operation.host() == 1) {
      return s + " arp who-has " + arp.target_ip.toString() + " tell " + arp.sender_ip.toString();
    }
    return s + " arp reply " + arp.sender_ip.toString() + " is-at " + arp.sender_mac.toString();
  }
  if (k.eth_type != packet::ethertype::kIpv4) return s + " ethertype " + std::to_string(k.eth_type);
  s += " ip " + v4Text(k.ip_src) + " > " + v4Text(k.ip_dst) + " ttl " + std::to_string(k.ip_ttl) +
       " len " + std::to_string(p.l3_end - p.l3_offset);
  switch (k.ip_proto) {
    case packet::ipproto::kTcp:
      return s + " tcp " + std::to_string(k.tp_src) + " > " + std::to_string(k.tp_dst) + " [" +
             tcpFlags(k.tcp_flags) + "]";
    case packet::ipproto::kUdp: {
      s += " udp " + std::to_string(k.tp_src) + " > " + std::to_string(k.tp_dst);
      packet::DhcpMessage m;
      if ((k.tp_src == 67 || k.tp_src == 68) &&
          packet::parseDhcp(frame.subspan(p.payload_offset, p.l3_end - p.payload_offset), m) ==
              DropReason::None) {
        static const char* kTypes[] = {"?",   "DISCOVER", "OFFER",   "REQUEST", "DECLINE",
                                       "ACK", "NAK",      "RELEASE", "INFORM"};
        s += std::string(" dhcp ") + (m.message_type <= 8 ? kTypes[m.message_type] : "?") +
             " yiaddr " + m.header.yiaddr.toString();
      }
      return s;
    }
    case packet::ipproto::kIcmp:
      return s + " icmp " + std::to_string(k.tp_src) + "/" + std::to_string(k.tp_dst) + " id " +
             std::to_string(k.icmp_id);
    default:
      return s + " proto " + std::to_string(k.ip_proto);
  }
}

topology::TopologyBuilder scenario() {
  topology::TopologyBuilder b;
  b.addHost({.key = kH1, .name = "h1", .tunnel_ip = ip("192.168.100.1")})
      .addHost({.key = kH2, .name = "h2", .tunnel_ip = ip("192.168.100.2")})
      .addHost({.key = kH3, .name = "h3", .tunnel_ip = ip("192.168.100.3")});
  b.addSwitch({.key = kNet1,
               .id = "net1-id",
               .name = "net1",
               .vni = 101,
               .mtu = 1442,
               .subnets = {{.id = "subnet1-id",
                            .cidr = prefix("10.0.0.0/24"),
                            .gateway = ip("10.0.0.1"),
                            .dns_servers = {ip("192.0.2.53")},
                            .host_routes = {{prefix("192.168.50.0/24"), ip("10.0.0.254")}}}},
               .dns_domain = "openstacklocal"});
  b.addSwitch(
      {.key = kNet2,
       .id = "net2-id",
       .name = "net2",
       .vni = 102,
       .mtu = 1400,
       .subnets = {
           {.id = "subnet2-id", .cidr = prefix("10.0.1.0/24"), .gateway = ip("10.0.1.1")}}});
  b.addSwitch(
      {.key = kNetB,
       .id = "netb-id",
       .name = "net-b",
       .vni = 201,
       .mtu = 1442,
       .subnets = {
           {.id = "subnetb-id", .cidr = prefix("10.0.0.0/24"), .gateway = ip("10.0.0.1")}}});
  b.addSwitch({.key = kPublic,
               .id = "public-id",
               .name = "public",
               .vni = 1000,
               .mtu = 1500,
               .subnets = {{.id = "public-subnet-id",
                            .cidr = prefix("203.0.113.0/24"),
                            .gateway = ip("203.0.113.1"),
                            .dhcp = false}},
               .external = true,
               .physical_network = "physnet1"});
  using topology::Rule;
  b.addGroup({.key = kDefault,
              .id = "sg-default-id",
              .name = "default",
              .rules = {Rule{.id = "rule-default-egress", .direction = Direction::Egress},
                        Rule{.id = "rule-default-ingress",
                             .direction = Direction::Ingress,
                             .remote_group = kDefault}}});
  b.addGroup({.key = kWeb,
              .id = "sg-web-id",
              .name = "web",
              .rules = {Rule{.id = "rule-web-http",
                             .direction = Direction::Ingress,
                             .protocol = 6,
                             .port_min = 80,
                             .port_max = 80,
                             .remote_prefix = prefix("0.0.0.0/0")},
                        Rule{.id = "rule-web-icmp", .direction = Direction::Ingress, .protocol = 1},
                        Rule{.id = "rule-web-egress", .direction = Direction::Egress}}});
  b.addGroup({.key = kDefaultB,
              .id = "sg-default-b-id",
              .name = "default",
              .rules = {Rule{.id = "rule-b-egress", .direction = Direction::Egress},
                        Rule{.id = "rule-b-ingress",
                             .direction = Direction::Ingress,
                             .remote_group = kDefaultB}}});
  auto vm = [&](uint32_t key, const char* name, uint32_t sw, uint8_t m, const char* address,
                uint32_t host, std::vector<uint32_t> groups) {
    b.addPort({.key = key,
               .id = std::string("port-") + name,
               .switch_key = sw,
               .mac = mac(0, m),
               .ips = {ip(address)},
               .groups = std::move(groups),
               .host = host,
               .device_owner = "compute:nova",
               .name = name});
  };
  vm(kVm1, "vm1", kNet1, 1, "10.0.0.5", kH1, {kDefault});
  vm(kVm2, "vm2", kNet1, 2, "10.0.0.6", kH2, {kDefault});
  vm(kVm5, "vm5", kNet1, 5, "10.0.0.8", kH1, {kDefault});
  vm(kVm6, "vm6", kNet1, 6, "10.0.0.9", kH3, {kDefault});
  vm(kVm3, "vm3", kNet2, 3, "10.0.1.5", kH1, {kWeb});
  vm(kVmB, "vmb", kNetB, 0x21, "10.0.0.5", kH1, {kDefaultB});
  b.addRouter({.key = kRouter,
               .id = "router1-id",
               .name = "r1",
               .interfaces = {{.port_key = 901,
                               .switch_key = kNet1,
                               .mac = kRouterNet1Mac,
                               .ip = ip("10.0.0.1"),
                               .subnet = prefix("10.0.0.0/24")},
                              {.port_key = 902,
                               .switch_key = kNet2,
                               .mac = kRouterNet2Mac,
                               .ip = ip("10.0.1.1"),
                               .subnet = prefix("10.0.1.0/24")}},
               .gateway = topology::Gateway{.port_key = 903,
                                            .switch_key = kPublic,
                                            .mac = kGatewayMac,
                                            .ips = {ip("203.0.113.10")},
                                            .snat = true,
                                            .host = kH2,
                                            .nexthop = ip("203.0.113.1")}});
  b.addFloatingIp({.id = "fip1-id",
                   .external = ip("203.0.113.50"),
                   .fixed = ip("10.0.1.5"),
                   .port_key = kVm3,
                   .router_key = kRouter});
  return b;
}

World::World(Encapsulation encapsulation) : encapsulation_(encapsulation) {
  for (uint32_t h : {kH1, kH2, kH3}) {
    pipeline::Config c;
    c.host.host = h;
    if (h != kH3) c.host.uplinks = {"physnet1"};
    c.encapsulation = encapsulation;
    hosts_[h] = std::make_unique<Datapath>(clock, std::move(c));
  }
}

void World::setTopology(const topology::TopologyBuilder& b, uint64_t version) {
  auto built = b.build(version);
  if (!built) throw std::runtime_error(built.error().message());
  topology_ = *built;
  for (auto& [key, dp] : hosts_) dp->setTopology(topology_);
}

std::vector<World::Received> World::send(uint32_t host, const Ingress& in,
                                         std::span<const uint8_t> frame,
                                         std::vector<std::string>* trace) {
  struct Pending {
    uint32_t host;
    Ingress in;
    std::vector<uint8_t> bytes;
  };
  std::deque<Pending> queue;
  queue.push_back({host, in, {frame.begin(), frame.end()}});
  std::vector<Received> received;
  for (int steps = 0; !queue.empty() && steps < 64; ++steps) {
    Pending p = std::move(queue.front());
    queue.pop_front();
    Outputs out;
    std::vector<std::string> lines;
    hosts_.at(p.host)->process(p.in, p.bytes, out, trace != nullptr ? &lines : nullptr);
    const std::string prefix = "h" + std::to_string(p.host) + ": ";
    if (trace != nullptr) {
      for (auto& l : lines) trace->push_back(prefix + l);
    }
    for (const auto& item : out.items()) {
      auto bytes = out.bytes(item);
      if (item.kind == Outputs::Kind::Tunnel) {
        const auto* sender = topology_->findHost(p.host);
        queue.push_back({item.host,
                         Ingress::fromTunnel(encapsulation_, sender->tunnel_ip),
                         {bytes.begin(), bytes.end()}});
        continue;
      }
      received.push_back({p.host, item.kind, item.port, item.uplink, {bytes.begin(), bytes.end()}});
    }
  }
  return received;
}

std::string render(const std::vector<std::string>& trace,
                   const std::vector<World::Received>& received) {
  std::string s;
  for (const auto& l : trace) s += l + "\n";
  for (const auto& r : received) {
    s += "out: h" + std::to_string(r.host) +
         (r.kind == Outputs::Kind::Port ? " port " + std::to_string(r.port)
                                        : " uplink " + std::to_string(r.uplink)) +
         ": " + describeFrame(r.bytes) + "\n";
  }
  if (received.empty()) s += "out: nothing\n";
  return s;
}

}  // namespace canopy::datapath::testing
