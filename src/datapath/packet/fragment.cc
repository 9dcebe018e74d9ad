#include "datapath/packet/fragment.h"

#include "datapath/packet/checksum.h"

namespace canopy::datapath::packet {

std::vector<std::vector<uint8_t>> fragmentIpv4(std::span<const uint8_t> frame,
                                               const ParsedPacket& p, uint16_t mtu) {
  Ipv4Header ip;
  if (p.key.eth_type != ethertype::kIpv4 || !load(frame, p.l3_offset, ip)) return {};
  const size_t header = ip.headerBytes();
  const uint16_t flags = ip.flags_fragment.host();
  // Options would have to be sorted into copied and not copied: such
  // packets are not cut (and are rare).
  if (header != sizeof(Ipv4Header) || (flags & Ipv4Header::kDontFragment) != 0) return {};
  if (mtu < header + 8 || p.l3_end > frame.size()) return {};
  const size_t chunk = (mtu - header) & ~size_t{7};
  const size_t start = p.l3_offset + header;
  // The first fragment carries the whole L4 header (its ports decide the
  // later ones, conntrack/fragments.h).
  if (p.payload_offset != 0 && p.payload_offset - start > chunk) return {};
  // A whole UDP datagram whose length says otherwise than its packet is not
  // cut: its first fragment would contradict itself.
  if (p.key.ip_proto == ipproto::kUdp && p.key.ip_frag == Fragment::None && p.l4_offset != 0) {
    UdpHeader udp;
    if (!load(frame, p.l4_offset, udp) || udp.length.host() != p.l3_end - start) return {};
  }
  const size_t payload = p.l3_end - start;
  const size_t base = (flags & Ipv4Header::kOffsetMask) * size_t{8};
  if (base + payload > 0xffff) return {};
  std::vector<std::vector<uint8_t>> out;
  for (size_t at = 0; at < payload; at += chunk) {
    const size_t n = std::min(chunk, payload - at);
    const bool last = at + n == payload;
    std::vector<uint8_t> f(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(start));
    f.insert(f.end(), frame.begin() + static_cast<std::ptrdiff_t>(start + at),
             frame.begin() + static_cast<std::ptrdiff_t>(start + at + n));
    Ipv4Header h = ip;
    h.total_length = Be16::of(static_cast<uint16_t>(header + n));
    uint16_t more = last ? (flags & Ipv4Header::kMoreFragments) : Ipv4Header::kMoreFragments;
    h.flags_fragment = Be16::of(static_cast<uint16_t>(more | ((base + at) / 8)));
    h.checksum = Be16::of(0);
    store(f, p.l3_offset, h);
    h.checksum = Be16::of(checksum(std::span<const uint8_t>(f).subspan(p.l3_offset, header)));
    store(f, p.l3_offset, h);
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace canopy::datapath::packet
