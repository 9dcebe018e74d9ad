#include "world.h"

#include <deque>

#include "datapath/packet/dhcp.h"

namespace canopy::datapath::testing {

using namespace world;

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
