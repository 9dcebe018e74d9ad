#include "datapath/nat/nat.h"

#include <algorithm>
#include <array>

#include "base/assert.h"
#include "datapath/packet/checksum.h"

namespace canopy::datapath::nat {
namespace {

using packet::checksumUpdate16;
using packet::checksumUpdate32;
using packet::ipproto::kIcmp;
using packet::ipproto::kIcmpv6;
using packet::ipproto::kTcp;
using packet::ipproto::kUdp;

uint16_t read16(std::span<const uint8_t> f, size_t at) {
  return static_cast<uint16_t>(f[at] << 8 | f[at + 1]);
}
void write16(std::span<uint8_t> f, size_t at, uint16_t v) {
  f[at] = static_cast<uint8_t>(v >> 8);
  f[at + 1] = static_cast<uint8_t>(v);
}

// Writes 16-bit fields of a frame. Inside an ICMP error's quote it also
// keeps the outer ICMP checksum right: that checksum covers the quote, and
// every field written there is 16-bit aligned from the ICMP header's start
// (the quote begins 8 bytes in, its IPv4 header is a multiple of 4 long).
class FieldWriter {
 public:
  FieldWriter(std::span<uint8_t> frame, uint16_t* covering_checksum)
      : frame_(frame), covering_(covering_checksum) {}

  uint16_t get(size_t at) const { return read16(frame_, at); }
  uint32_t get32(size_t at) const { return static_cast<uint32_t>(get(at)) << 16 | get(at + 2); }
  uint8_t byte(size_t at) const { return frame_[at]; }
  void put(size_t at, uint16_t v) {
    if (covering_ != nullptr) *covering_ = checksumUpdate16(*covering_, get(at), v);
    write16(frame_, at, v);
  }
  void put32(size_t at, uint32_t v) {
    put(at, static_cast<uint16_t>(v >> 16));
    put(at + 2, static_cast<uint16_t>(v));
  }

 private:
  std::span<uint8_t> frame_;
  uint16_t* covering_;
};

Side opposite(Side side) { return side == Side::Source ? Side::Destination : Side::Source; }

bool isEcho(uint8_t type) { return type == 8 || type == 0; }

// Sets one address of the IPv4 header at `ip` and updates its checksum;
// returns the address it replaced.
uint32_t rewriteAddress(FieldWriter& w, size_t ip, Side side, uint32_t to) {
  size_t at = ip + (side == Side::Source ? 12 : 16);
  uint32_t from = w.get32(at);
  w.put32(at, to);
  w.put(ip + 10, checksumUpdate32(w.get(ip + 10), from, to));
  return from;
}

// Follows an address change from `from` to `to` in the L4 header at `l4`:
// the TCP/UDP pseudo-header, and the port (or echo identifier) if given.
// The TCP checksum is left alone when it lies past `end` (a short quote).
void rewriteL4(FieldWriter& w, size_t l4, size_t end, uint8_t protocol, Side side, uint32_t from,
               uint32_t to, std::optional<uint16_t> port) {
  switch (protocol) {
    case kTcp:
    case kUdp: {
      bool udp = protocol == kUdp;
      size_t sum_at = l4 + (udp ? 6 : 16);
      bool has_sum = udp ? w.get(sum_at) != 0  // UDP over IPv4 may carry no checksum
                         : sum_at + 2 <= end;
      uint16_t sum = has_sum ? checksumUpdate32(w.get(sum_at), from, to) : 0;
      if (port) {
        size_t port_at = l4 + (side == Side::Source ? 0 : 2);
        if (has_sum) sum = checksumUpdate16(sum, w.get(port_at), *port);
        w.put(port_at, *port);
      }
      if (has_sum) w.put(sum_at, udp && sum == 0 ? 0xffff : sum);
      break;
    }
    case kIcmp:
      // No pseudo-header; the echo identifier stands for the port on
      // either side.
      if (port && isEcho(w.byte(l4))) {
        w.put(l4 + 2, checksumUpdate16(w.get(l4 + 2), w.get(l4 + 4), *port));
        w.put(l4 + 4, *port);
      }
      break;
    default:
      break;
  }
}

// An IPv6 address as the eight 16-bit words checksums add.
using Words = std::array<uint16_t, 8>;

Words wordsOf(const packet::Ipv6Address& a) {
  Words w{};
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = static_cast<uint16_t>(a.bytes[2 * i] << 8 | a.bytes[2 * i + 1]);
  }
  return w;
}

// A checksum whose pseudo-header held `from` and now holds `to`.
uint16_t pseudoHeaderUpdate(uint16_t checksum, const Words& from, const Words& to) {
  for (size_t i = 0; i < from.size(); ++i) checksum = checksumUpdate16(checksum, from[i], to[i]);
  return checksum;
}

// Sets one address of the IPv6 header at `ip`; returns the one it replaced.
Words rewriteAddress6(FieldWriter& w, size_t ip, Side side, const Words& to) {
  size_t at = ip + (side == Side::Source ? 8 : 24);
  Words from{};
  for (size_t i = 0; i < to.size(); ++i) {
    from[i] = w.get(at + 2 * i);
    w.put(at + 2 * i, to[i]);
  }
  return from;
}

// rewriteL4 for IPv6: ICMPv6's checksum covers the pseudo-header too.
void rewriteL4v6(FieldWriter& w, size_t l4, size_t end, uint8_t protocol, Side side,
                 const Words& from, const Words& to, std::optional<uint16_t> port) {
  switch (protocol) {
    case kTcp:
    case kUdp: {
      bool udp = protocol == kUdp;
      size_t sum_at = l4 + (udp ? 6 : 16);
      if (sum_at + 2 > end) {  // a short quote
        if (port) w.put(l4 + (side == Side::Source ? 0 : 2), *port);
        break;
      }
      uint16_t sum = pseudoHeaderUpdate(w.get(sum_at), from, to);
      if (port) {
        size_t port_at = l4 + (side == Side::Source ? 0 : 2);
        sum = checksumUpdate16(sum, w.get(port_at), *port);
        w.put(port_at, *port);
      }
      w.put(sum_at, udp && sum == 0 ? 0xffff : sum);
      break;
    }
    case kIcmpv6: {
      uint16_t sum = pseudoHeaderUpdate(w.get(l4 + 2), from, to);
      uint8_t type = w.byte(l4);
      if (port && (type == 128 || type == 129) && l4 + 6 <= end) {
        sum = checksumUpdate16(sum, w.get(l4 + 4), *port);
        w.put(l4 + 4, *port);
      }
      w.put(l4 + 2, sum);
      break;
    }
    default:
      break;
  }
}

// The quote of an ICMPv6 error: its IPv6 header, then past the extension
// headers to the L4 header (or to a later fragment's data).
DropReason icmpv6Quote(std::span<const uint8_t> packet, size_t at, IcmpQuote& out) noexcept {
  packet::Ipv6Header ip;
  if (!packet::load(packet, at, ip) || (ip.version_class_flow.host() >> 28) != 6) {
    return DropReason::NatBadIcmpQuote;
  }
  uint8_t next = ip.next_header;
  size_t l4 = at + sizeof(packet::Ipv6Header);
  bool later_fragment = false;
  for (int i = 0; i < 8; ++i) {
    if (next == 0 || next == 43 || next == 60) {  // hop-by-hop, routing, destination options
      packet::Ipv6ExtensionHeader e;
      if (!packet::load(packet, l4, e)) return DropReason::NatBadIcmpQuote;
      next = e.next_header;
      l4 += (static_cast<size_t>(e.length) + 1) * 8;
    } else if (next == 44) {  // fragment
      if (l4 + 8 > packet.size()) return DropReason::NatBadIcmpQuote;
      later_fragment = (static_cast<uint16_t>(packet[l4 + 2] << 8 | packet[l4 + 3]) & 0xfff8) != 0;
      next = packet[l4];
      l4 += 8;
    } else {
      break;
    }
  }
  if (l4 + 8 > packet.size()) return DropReason::NatBadIcmpQuote;
  out.ip_offset = static_cast<uint16_t>(at);
  out.l4_offset = static_cast<uint16_t>(l4);
  out.end = static_cast<uint16_t>(packet.size());
  out.protocol = next;
  out.later_fragment = later_fragment;
  return DropReason::None;
}

}  // namespace

DropReason icmpQuote(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                     IcmpQuote& out) noexcept {
  const packet::FlowKey& k = p.key;
  if (k.eth_type == packet::ethertype::kIpv6) {
    if (k.ip_proto != kIcmpv6 || p.l4_offset == 0 || !isIcmpv6Error(k.tp_src) ||
        p.payload_offset == 0 || p.l3_end > frame.size() || p.payload_offset > p.l3_end) {
      return DropReason::NatBadIcmpQuote;
    }
    return icmpv6Quote(frame.first(p.l3_end), p.payload_offset, out);
  }
  if (k.eth_type != packet::ethertype::kIpv4 || k.ip_proto != kIcmp || p.l4_offset == 0 ||
      !isIcmpv4Error(k.tp_src) || p.payload_offset == 0 || p.l3_end > frame.size() ||
      p.payload_offset > p.l3_end) {
    return DropReason::NatBadIcmpQuote;
  }
  auto packet = frame.first(p.l3_end);
  packet::Ipv4Header ip;
  if (!packet::load(packet, p.payload_offset, ip) || ip.version() != 4 ||
      ip.headerBytes() < sizeof(packet::Ipv4Header)) {
    return DropReason::NatBadIcmpQuote;
  }
  size_t l4 = p.payload_offset + ip.headerBytes();
  if (l4 + 8 > p.l3_end) return DropReason::NatBadIcmpQuote;
  out.ip_offset = p.payload_offset;
  out.l4_offset = static_cast<uint16_t>(l4);
  out.end = p.l3_end;
  out.protocol = ip.protocol;
  out.later_fragment = (ip.flags_fragment.host() & packet::Ipv4Header::kOffsetMask) != 0;
  return DropReason::None;
}

DropReason rewriteIpv4(std::span<uint8_t> frame, const packet::ParsedPacket& p, Side side,
                       packet::Ipv4Address address, std::optional<uint16_t> port) noexcept {
  if (p.key.eth_type != packet::ethertype::kIpv4) return DropReason::NatNotIpv4;
  size_t ip = p.l3_offset;
  if (frame.size() < ip + sizeof(packet::Ipv4Header)) return DropReason::Ipv4Truncated;
  bool icmp_error = p.key.ip_proto == kIcmp && p.l4_offset != 0 && isIcmpv4Error(p.key.tp_src);
  IcmpQuote quote;
  if (icmp_error) {
    // Checked before anything is written: a refused packet stays as it was.
    if (DropReason why = icmpQuote(frame, p, quote); why != DropReason::None) return why;
  }

  uint32_t to = address.host();
  FieldWriter outer(frame, nullptr);
  uint32_t from = rewriteAddress(outer, ip, side, to);
  if (p.l4_offset == 0) return DropReason::None;  // later fragment, or no L4 view
  if (!icmp_error) {
    rewriteL4(outer, p.l4_offset, p.l3_end, p.key.ip_proto, side, from, to, port);
    return DropReason::None;
  }

  // The quote is the reported packet as its sender sent it: the outer
  // packet's destination was its source, and the reverse.
  size_t icmp_sum_at = p.l4_offset + 2;
  uint16_t icmp_sum = outer.get(icmp_sum_at);
  FieldWriter inner(frame, &icmp_sum);
  Side quoted_side = opposite(side);
  uint32_t quoted_from = rewriteAddress(inner, quote.ip_offset, quoted_side, to);
  if (!quote.later_fragment) {
    rewriteL4(inner, quote.l4_offset, quote.end, quote.protocol, quoted_side, quoted_from, to,
              port);
  }
  outer.put(icmp_sum_at, icmp_sum);
  return DropReason::None;
}

DropReason rewriteIpv6(std::span<uint8_t> frame, const packet::ParsedPacket& p, Side side,
                       packet::Ipv6Address address, std::optional<uint16_t> port) noexcept {
  if (p.key.eth_type != packet::ethertype::kIpv6) return DropReason::NatNotIpv6;
  size_t ip = p.l3_offset;
  if (frame.size() < ip + sizeof(packet::Ipv6Header) || p.l3_end > frame.size()) {
    return DropReason::Ipv6Truncated;
  }
  bool icmp_error = p.key.ip_proto == kIcmpv6 && p.l4_offset != 0 && isIcmpv6Error(p.key.tp_src);
  IcmpQuote quote;
  if (icmp_error) {
    if (DropReason why = icmpQuote(frame, p, quote); why != DropReason::None) return why;
  }
  const Words to = wordsOf(address);
  FieldWriter outer(frame, nullptr);
  const Words from = rewriteAddress6(outer, ip, side, to);
  if (p.l4_offset == 0) return DropReason::None;  // later fragment, or no L4 view
  if (!icmp_error) {
    rewriteL4v6(outer, p.l4_offset, p.l3_end, p.key.ip_proto, side, from, to, port);
    return DropReason::None;
  }
  // The error's own checksum covers its pseudo-header, then the quote,
  // whose other side changes (see rewriteIpv4).
  size_t icmp_sum_at = p.l4_offset + 2;
  uint16_t icmp_sum = pseudoHeaderUpdate(outer.get(icmp_sum_at), from, to);
  FieldWriter inner(frame, &icmp_sum);
  Side quoted_side = opposite(side);
  const Words quoted_from = rewriteAddress6(inner, quote.ip_offset, quoted_side, to);
  if (!quote.later_fragment) {
    rewriteL4v6(inner, quote.l4_offset, quote.end, quote.protocol, quoted_side, quoted_from, to,
                port);
  }
  outer.put(icmp_sum_at, icmp_sum);
  return DropReason::None;
}

DropReason rewriteIp(std::span<uint8_t> frame, const packet::ParsedPacket& p, Side side,
                     const IpAddress& address, std::optional<uint16_t> port) noexcept {
  if (p.key.eth_type == packet::ethertype::kIpv4 && address.isV4()) {
    return rewriteIpv4(frame, p, side, packet::Ipv4Address::of(address), port);
  }
  if (p.key.eth_type == packet::ethertype::kIpv6 && address.isV6()) {
    return rewriteIpv6(frame, p, side, packet::Ipv6Address::of(address), port);
  }
  return p.key.eth_type == packet::ethertype::kIpv4 || p.key.eth_type == packet::ethertype::kIpv6
             ? DropReason::NatFamilyMismatch
             : DropReason::NatNotIpv4;
}

PortAllocator::Pool& PortAllocator::pool(packet::Ipv4Address external, uint8_t protocol) {
  Pool& p = pools_[{external.host(), protocol}];
  if (p.used.empty()) p.used.assign(static_cast<size_t>(last_ - first_) + 1, 0);
  return p;
}

std::optional<uint16_t> PortAllocator::allocate(packet::Ipv4Address external, uint8_t protocol,
                                                PortRange range) {
  Pool& p = pool(external, protocol);
  if (p.count == p.used.size() || range.first > last_ || range.last < first_ ||
      range.first > range.last) {
    ++exhausted_;
    return std::nullopt;
  }
  // Indexes lo-hi of the pool, searched from where the last search ended.
  const size_t lo = std::max(range.first, first_) - first_;
  const size_t hi = std::min(range.last, last_) - first_;
  const size_t n = hi - lo + 1;
  const size_t start = p.next >= lo && p.next <= hi ? p.next - lo : 0;
  for (size_t i = 0; i < n; ++i) {
    size_t at = lo + (start + i) % n;
    if (p.used[at] == 0) {
      p.used[at] = 1;
      ++p.count;
      p.next = at == hi ? lo : at + 1;
      return static_cast<uint16_t>(first_ + at);
    }
  }
  if (n == p.used.size()) CANOPY_BUG("NAT: no free port although the count said there was room");
  ++exhausted_;
  return std::nullopt;
}

bool PortAllocator::claim(packet::Ipv4Address external, uint8_t protocol, uint16_t port) {
  if (port < first_ || port > last_) return false;
  Pool& p = pool(external, protocol);
  size_t at = port - first_;
  if (p.used[at] != 0) return false;
  p.used[at] = 1;
  ++p.count;
  return true;
}

bool PortAllocator::retain(packet::Ipv4Address external, uint8_t protocol, uint16_t port) {
  if (port < first_ || port > last_) return false;
  auto it = pools_.find({external.host(), protocol});
  if (it == pools_.end()) return false;
  uint8_t& holders = it->second.used[port - first_];
  if (holders == 0 || holders == UINT8_MAX) return false;
  ++holders;
  return true;
}

void PortAllocator::release(packet::Ipv4Address external, uint8_t protocol,
                            uint16_t port) noexcept {
  if (port < first_ || port > last_) return;
  auto it = pools_.find({external.host(), protocol});
  if (it == pools_.end()) return;  // never allocated from
  Pool& p = it->second;
  size_t at = port - first_;
  if (p.used[at] != 0 && --p.used[at] == 0) --p.count;
}

size_t PortAllocator::inUse(packet::Ipv4Address external, uint8_t protocol) const {
  auto it = pools_.find({external.host(), protocol});
  return it == pools_.end() ? 0 : it->second.count;
}

}  // namespace canopy::datapath::nat
