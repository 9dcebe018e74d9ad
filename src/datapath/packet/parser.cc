#include "datapath/packet/parser.h"

#include <cstring>

namespace canopy::datapath::packet {
namespace {

constexpr int kMaxIpv6Extensions = 8;

DropReason parseL4(std::span<const uint8_t> frame, ParsedPacket& p, uint8_t proto,
                   size_t offset) noexcept {
  FlowKey& k = p.key;
  auto packet = frame.first(p.l3_end);
  switch (proto) {
    case ipproto::kTcp: {
      TcpHeader tcp;
      if (!load(packet, offset, tcp)) return DropReason::TcpTruncated;
      size_t length = tcp.headerBytes();
      if (length < sizeof(TcpHeader) || packet.size() - offset < length) {
        return DropReason::TcpBadHeaderLength;
      }
      k.tp_src = tcp.src_port.host();
      k.tp_dst = tcp.dst_port.host();
      k.tcp_flags = tcp.flags;
      p.payload_offset = static_cast<uint16_t>(offset + length);
      break;
    }
    case ipproto::kUdp: {
      UdpHeader udp;
      if (!load(packet, offset, udp)) return DropReason::UdpTruncated;
      // A first fragment's UDP length is the whole datagram's: at least
      // what this fragment carries, more than it holds.
      size_t length = udp.length.host();
      size_t here = packet.size() - offset;
      if (length < sizeof(UdpHeader) ||
          (k.ip_frag == Fragment::First ? length < here : length > here)) {
        return DropReason::UdpBadLength;
      }
      k.tp_src = udp.src_port.host();
      k.tp_dst = udp.dst_port.host();
      p.payload_offset = static_cast<uint16_t>(offset + sizeof(UdpHeader));
      break;
    }
    case ipproto::kIcmp:
    case ipproto::kIcmpv6: {
      IcmpHeader icmp;
      if (!load(packet, offset, icmp)) {
        return proto == ipproto::kIcmp ? DropReason::IcmpTruncated : DropReason::Icmpv6Truncated;
      }
      k.tp_src = icmp.type;
      k.tp_dst = icmp.code;
      bool echo = proto == ipproto::kIcmp ? (icmp.type == 8 || icmp.type == 0)
                                          : (icmp.type == 128 || icmp.type == 129);
      if (echo) k.icmp_id = icmp.id.host();
      p.payload_offset = static_cast<uint16_t>(offset + sizeof(IcmpHeader));
      break;
    }
    default:
      return DropReason::None;  // carried without an L4 view
  }
  p.l4_offset = static_cast<uint16_t>(offset);
  return DropReason::None;
}

DropReason parseIpv4(std::span<const uint8_t> frame, ParsedPacket& p) noexcept {
  Ipv4Header ip;
  if (!load(frame, p.l3_offset, ip)) return DropReason::Ipv4Truncated;
  if (ip.version() != 4) return DropReason::Ipv4BadVersion;
  size_t available = frame.size() - p.l3_offset;
  size_t header = ip.headerBytes();
  if (header < sizeof(Ipv4Header) || header > available) return DropReason::Ipv4BadHeaderLength;
  size_t total = ip.total_length.host();
  if (total < header || total > available) return DropReason::Ipv4BadTotalLength;
  p.l3_end = static_cast<uint16_t>(p.l3_offset + total);
  FlowKey& k = p.key;
  k.ip_proto = ip.protocol;
  k.ip_tos = ip.tos;
  k.ip_ttl = ip.ttl;
  std::memcpy(k.ip_src.data(), &ip.src, 4);
  std::memcpy(k.ip_dst.data(), &ip.dst, 4);
  uint16_t frag = ip.flags_fragment.host();
  p.fragment_id = ip.id.host();
  if ((frag & Ipv4Header::kOffsetMask) != 0) {
    k.ip_frag = Fragment::Later;
    return DropReason::None;
  }
  if ((frag & Ipv4Header::kMoreFragments) != 0) k.ip_frag = Fragment::First;
  return parseL4(frame, p, ip.protocol, p.l3_offset + header);
}

DropReason parseIpv6(std::span<const uint8_t> frame, ParsedPacket& p) noexcept {
  Ipv6Header ip;
  if (!load(frame, p.l3_offset, ip)) return DropReason::Ipv6Truncated;
  if (ip.version_class_flow.host() >> 28 != 6) return DropReason::Ipv6BadVersion;
  size_t available = frame.size() - p.l3_offset - sizeof(Ipv6Header);
  size_t payload = ip.payload_length.host();
  if (payload > available) return DropReason::Ipv6BadPayloadLength;
  p.l3_end = static_cast<uint16_t>(p.l3_offset + sizeof(Ipv6Header) + payload);
  FlowKey& k = p.key;
  k.ip_tos = static_cast<uint8_t>(ip.version_class_flow.host() >> 20);
  k.ip_ttl = ip.hop_limit;
  k.ip_src = ip.src.bytes;
  k.ip_dst = ip.dst.bytes;
  auto packet = frame.first(p.l3_end);
  uint8_t next = ip.next_header;
  size_t offset = p.l3_offset + sizeof(Ipv6Header);
  // Walk the extension headers, each bounded by the packet, at most a few.
  for (int i = 0;; ++i) {
    bool extension = next == ipproto::kHopByHop || next == ipproto::kRouting ||
                     next == ipproto::kDestinationOptions || next == ipproto::kFragment ||
                     next == ipproto::kAh;
    if (!extension) break;
    if (i == kMaxIpv6Extensions) return DropReason::Ipv6TooManyExtensions;
    if (next == ipproto::kFragment) {
      Ipv6FragmentHeader fragment;
      if (!load(packet, offset, fragment)) return DropReason::Ipv6ExtensionTruncated;
      uint16_t bits = fragment.offset_flags.host();
      p.fragment_id = fragment.id.host();
      next = fragment.next_header;
      offset += sizeof(Ipv6FragmentHeader);
      if ((bits & 0xfff8) != 0) {
        k.ip_frag = Fragment::Later;
        k.ip_proto = next;
        return DropReason::None;
      }
      if ((bits & 1) != 0) k.ip_frag = Fragment::First;
      continue;
    }
    Ipv6ExtensionHeader extension_header;
    if (!load(packet, offset, extension_header)) return DropReason::Ipv6ExtensionTruncated;
    size_t length = next == ipproto::kAh ? (extension_header.length + 2u) * 4u
                                         : (extension_header.length + 1u) * 8u;
    if (packet.size() - offset < length) return DropReason::Ipv6ExtensionTruncated;
    next = extension_header.next_header;
    offset += length;
  }
  k.ip_proto = next;
  return parseL4(frame, p, next, offset);
}

}  // namespace

DropReason parse(std::span<const uint8_t> frame, ParsedPacket& out) noexcept {
  out = ParsedPacket{};
  if (frame.size() > UINT16_MAX) frame = frame.first(UINT16_MAX);  // no frame is larger
  EthernetHeader eth;
  if (!load(frame, 0, eth)) return DropReason::EthernetTruncated;
  FlowKey& k = out.key;
  k.eth_src = eth.src;
  k.eth_dst = eth.dst;
  uint16_t type = eth.type.host();
  size_t offset = sizeof(EthernetHeader);
  if (type == ethertype::kQinQ) return DropReason::StackedVlan;
  if (type == ethertype::kVlan) {
    VlanTag tag;
    if (!load(frame, offset, tag)) return DropReason::VlanTruncated;
    type = tag.type.host();
    if (type == ethertype::kVlan || type == ethertype::kQinQ) return DropReason::StackedVlan;
    k.vlan_tci = tag.tci.host();
    offset += sizeof(VlanTag);
  }
  k.eth_type = type;
  out.l3_offset = static_cast<uint16_t>(offset);
  out.l3_end = static_cast<uint16_t>(frame.size());
  switch (type) {
    case ethertype::kIpv4:
      return parseIpv4(frame, out);
    case ethertype::kIpv6:
      return parseIpv6(frame, out);
    case ethertype::kArp: {
      ArpPacket arp;
      if (!load(frame, offset, arp)) return DropReason::ArpTruncated;
      if (arp.hardware_type.host() != 1 || arp.protocol_type.host() != ethertype::kIpv4 ||
          arp.hardware_length != 6 || arp.protocol_length != 4) {
        return DropReason::ArpNotEthernetIpv4;
      }
      k.tp_src = arp.operation.host();
      std::memcpy(k.ip_src.data(), &arp.sender_ip, 4);
      std::memcpy(k.ip_dst.data(), &arp.target_ip, 4);
      out.l3_end = static_cast<uint16_t>(offset + sizeof(ArpPacket));
      return DropReason::None;
    }
    default:
      return DropReason::None;
  }
}

uint64_t flowKeyHash(const FlowKey& key) noexcept {
  uint64_t words[sizeof(FlowKey) / 8];
  std::memcpy(words, &key, sizeof(FlowKey));
  uint64_t h = 14695981039346656037ULL;
  for (uint64_t w : words) {
    h ^= w;
    h *= 1099511628211ULL;
    h ^= h >> 29;
  }
  return h;
}

}  // namespace canopy::datapath::packet
