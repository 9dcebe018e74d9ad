#include "datapath/packet/builder.h"

#include <cstdio>

#include "datapath/packet/checksum.h"

namespace canopy::datapath::packet {

std::string MacAddress::toString() const {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2],
                bytes[3], bytes[4], bytes[5]);
  return buf;
}

std::string Ipv4Address::toString() const {
  return std::to_string(value.b[0]) + "." + std::to_string(value.b[1]) + "." +
         std::to_string(value.b[2]) + "." + std::to_string(value.b[3]);
}

std::string Ipv6Address::toString() const {
  std::string out;
  char buf[6];
  for (size_t i = 0; i < 16; i += 2) {
    std::snprintf(buf, sizeof(buf), "%x", bytes[i] << 8 | bytes[i + 1]);
    if (i > 0) out += ':';
    out += buf;
  }
  return out;
}

void PacketBuilder::add(Layer layer, const void* header, size_t size) {
  parts_.push_back({layer, bytes_.size(), size});
  auto p = static_cast<const uint8_t*>(header);
  bytes_.insert(bytes_.end(), p, p + size);
}

const PacketBuilder::Part* PacketBuilder::find(Layer layer) const {
  for (const auto& part : parts_) {
    if (part.layer == layer) return &part;
  }
  return nullptr;
}

PacketBuilder& PacketBuilder::eth(MacAddress src, MacAddress dst) {
  EthernetHeader h{.dst = dst, .src = src, .type = {}};
  add(Layer::Eth, &h, sizeof(h));
  description_ += "eth " + src.toString() + ">" + dst.toString();
  return *this;
}

PacketBuilder& PacketBuilder::vlan(uint16_t vid) {
  VlanTag t{.tci = Be16::of(vid & 0x0fff), .type = {}};
  add(Layer::Vlan, &t, sizeof(t));
  description_ += " vlan " + std::to_string(vid);
  return *this;
}

PacketBuilder& PacketBuilder::arp(uint16_t operation, MacAddress sender_mac, Ipv4Address sender_ip,
                                  MacAddress target_mac, Ipv4Address target_ip) {
  ArpPacket a{.hardware_type = Be16::of(1),
              .protocol_type = Be16::of(ethertype::kIpv4),
              .hardware_length = 6,
              .protocol_length = 4,
              .operation = Be16::of(operation),
              .sender_mac = sender_mac,
              .sender_ip = sender_ip,
              .target_mac = target_mac,
              .target_ip = target_ip};
  add(Layer::Arp, &a, sizeof(a));
  description_ += std::string(" arp ") + (operation == 1 ? "who-has " : "reply ") +
                  target_ip.toString() + " tell " + sender_ip.toString();
  return *this;
}

PacketBuilder& PacketBuilder::ipv4(Ipv4Address src, Ipv4Address dst, uint8_t ttl) {
  Ipv4Header h{};
  h.version_ihl = 0x45;
  h.ttl = ttl;
  h.src = src;
  h.dst = dst;
  add(Layer::Ipv4, &h, sizeof(h));
  description_ += " ipv4 " + src.toString() + ">" + dst.toString() + " ttl " + std::to_string(ttl);
  return *this;
}

PacketBuilder& PacketBuilder::ipv6(const Ipv6Address& src, const Ipv6Address& dst,
                                   uint8_t hop_limit) {
  Ipv6Header h{};
  h.version_class_flow = Be32::of(6u << 28);
  h.hop_limit = hop_limit;
  h.src = src;
  h.dst = dst;
  add(Layer::Ipv6, &h, sizeof(h));
  description_ += " ipv6 " + src.toString() + ">" + dst.toString();
  return *this;
}

PacketBuilder& PacketBuilder::fragment(uint16_t offset_bytes, bool more_fragments) {
  if (const Part* ip = find(Layer::Ipv4)) {
    Ipv4Header h;
    (void)load(bytes_, ip->offset, h);
    uint16_t bits = static_cast<uint16_t>((h.flags_fragment.host() & Ipv4Header::kDontFragment) |
                                          (more_fragments ? Ipv4Header::kMoreFragments : 0) |
                                          ((offset_bytes / 8) & Ipv4Header::kOffsetMask));
    h.flags_fragment = Be16::of(bits);
    store(std::span<uint8_t>(bytes_), ip->offset, h);
    description_ += " frag " + std::to_string(offset_bytes) + (more_fragments ? "+" : "");
  }
  return *this;
}

PacketBuilder& PacketBuilder::dontFragment() {
  if (const Part* ip = find(Layer::Ipv4)) {
    Ipv4Header h;
    (void)load(bytes_, ip->offset, h);
    h.flags_fragment = Be16::of(h.flags_fragment.host() | Ipv4Header::kDontFragment);
    store(std::span<uint8_t>(bytes_), ip->offset, h);
    description_ += " DF";
  }
  return *this;
}

PacketBuilder& PacketBuilder::udp(uint16_t src_port, uint16_t dst_port) {
  UdpHeader h{
      .src_port = Be16::of(src_port), .dst_port = Be16::of(dst_port), .length = {}, .checksum = {}};
  add(Layer::Udp, &h, sizeof(h));
  description_ += " udp " + std::to_string(src_port) + ">" + std::to_string(dst_port);
  return *this;
}

PacketBuilder& PacketBuilder::tcp(uint16_t src_port, uint16_t dst_port, uint8_t flags, uint32_t seq,
                                  uint32_t ack) {
  TcpHeader h{};
  h.src_port = Be16::of(src_port);
  h.dst_port = Be16::of(dst_port);
  h.sequence = Be32::of(seq);
  h.acknowledgment = Be32::of(ack);
  h.data_offset = 5 << 4;
  h.flags = flags;
  h.window = Be16::of(65535);
  add(Layer::Tcp, &h, sizeof(h));
  std::string f;
  if (flags & TcpHeader::kSyn) f += 'S';
  if (flags & TcpHeader::kAck) f += 'A';
  if (flags & TcpHeader::kFin) f += 'F';
  if (flags & TcpHeader::kRst) f += 'R';
  if (flags & TcpHeader::kPsh) f += 'P';
  description_ +=
      " tcp " + std::to_string(src_port) + ">" + std::to_string(dst_port) + " [" + f + "]";
  return *this;
}

PacketBuilder& PacketBuilder::icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t sequence) {
  IcmpHeader h{.type = type,
               .code = code,
               .checksum = {},
               .id = Be16::of(id),
               .sequence = Be16::of(sequence)};
  add(Layer::Icmp, &h, sizeof(h));
  description_ += " icmp " + std::to_string(type) + "/" + std::to_string(code);
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::string_view bytes) {
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  description_ += " payload " + std::to_string(bytes.size()) + "B";
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::span<const uint8_t> bytes) {
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  description_ += " payload " + std::to_string(bytes.size()) + "B";
  return *this;
}

std::vector<uint8_t> PacketBuilder::build() const {
  std::vector<uint8_t> out = bytes_;
  std::span<uint8_t> frame(out);
  // Each layer's type field names the layer after it.
  for (size_t i = 0; i < parts_.size(); ++i) {
    const Part& part = parts_[i];
    const Part* next = i + 1 < parts_.size() ? &parts_[i + 1] : nullptr;
    uint16_t type = 0;
    if (next != nullptr) {
      switch (next->layer) {
        case Layer::Vlan:
          type = ethertype::kVlan;
          break;
        case Layer::Arp:
          type = ethertype::kArp;
          break;
        case Layer::Ipv4:
          type = ethertype::kIpv4;
          break;
        case Layer::Ipv6:
          type = ethertype::kIpv6;
          break;
        default:
          break;
      }
    }
    if (part.layer == Layer::Eth && type != 0) {
      store(frame, part.offset + 12, Be16::of(type));
    } else if (part.layer == Layer::Vlan && type != 0) {
      store(frame, part.offset + 2, Be16::of(type));
    }
  }
  // Lengths and checksums, from the innermost layer out.
  const Part* ip4 = find(Layer::Ipv4);
  const Part* ip6 = find(Layer::Ipv6);
  for (auto it = parts_.rbegin(); it != parts_.rend(); ++it) {
    const Part& part = *it;
    uint32_t length = static_cast<uint32_t>(out.size() - part.offset);
    auto l4 = frame.subspan(part.offset);
    auto pseudo = [&](uint8_t proto) -> uint32_t {
      Ipv4Header h4;
      Ipv6Header h6;
      if (ip4 != nullptr && load(out, ip4->offset, h4)) {
        return pseudoHeaderSum(h4.src, h4.dst, proto, length);
      }
      if (ip6 != nullptr && load(out, ip6->offset, h6)) {
        return pseudoHeaderSum(h6.src, h6.dst, proto, length);
      }
      return 0;
    };
    switch (part.layer) {
      case Layer::Udp: {
        store(frame, part.offset + 4, Be16::of(static_cast<uint16_t>(length)));
        uint16_t c = finish(sumWords(l4, pseudo(ipproto::kUdp)));
        store(frame, part.offset + 6, Be16::of(c == 0 ? 0xffff : c));
        break;
      }
      case Layer::Tcp:
        store(frame, part.offset + 16, Be16::of(finish(sumWords(l4, pseudo(ipproto::kTcp)))));
        break;
      case Layer::Icmp:
        if (ip6 != nullptr) {
          store(frame, part.offset + 2, Be16::of(finish(sumWords(l4, pseudo(ipproto::kIcmpv6)))));
        } else {
          store(frame, part.offset + 2, Be16::of(checksum(l4)));
        }
        break;
      case Layer::Ipv4: {
        Ipv4Header h;
        (void)load(out, part.offset, h);
        h.total_length = Be16::of(static_cast<uint16_t>(length));
        if (const Part* next = &part + 1; next < parts_.data() + parts_.size()) {
          h.protocol = next->layer == Layer::Udp    ? ipproto::kUdp
                       : next->layer == Layer::Tcp  ? ipproto::kTcp
                       : next->layer == Layer::Icmp ? ipproto::kIcmp
                                                    : h.protocol;
        }
        h.checksum = {};
        store(frame, part.offset, h);
        h.checksum = Be16::of(checksum(frame.subspan(part.offset, sizeof(h))));
        store(frame, part.offset, h);
        break;
      }
      case Layer::Ipv6: {
        Ipv6Header h;
        (void)load(out, part.offset, h);
        h.payload_length = Be16::of(static_cast<uint16_t>(length - sizeof(Ipv6Header)));
        if (const Part* next = &part + 1; next < parts_.data() + parts_.size()) {
          h.next_header = next->layer == Layer::Udp    ? ipproto::kUdp
                          : next->layer == Layer::Tcp  ? ipproto::kTcp
                          : next->layer == Layer::Icmp ? ipproto::kIcmpv6
                                                       : h.next_header;
        }
        store(frame, part.offset, h);
        break;
      }
      default:
        break;
    }
  }
  return out;
}

std::string PacketBuilder::describe() const { return description_; }

}  // namespace canopy::datapath::packet
