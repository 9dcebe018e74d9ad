#include "datapath/nat/nat.h"

#include "datapath/packet/checksum.h"

namespace canopy::datapath::nat {
namespace {

using packet::checksumUpdate16;
using packet::checksumUpdate32;

uint16_t read16(std::span<const uint8_t> f, size_t at) {
  return static_cast<uint16_t>(f[at] << 8 | f[at + 1]);
}
void write16(std::span<uint8_t> f, size_t at, uint16_t v) {
  f[at] = static_cast<uint8_t>(v >> 8);
  f[at + 1] = static_cast<uint8_t>(v);
}

}  // namespace

DropReason rewriteIpv4(std::span<uint8_t> frame, const packet::ParsedPacket& p, Side side,
                       packet::Ipv4Address address, std::optional<uint16_t> port) noexcept {
  if (p.key.eth_type != packet::ethertype::kIpv4) return DropReason::NatNotIpv4;
  size_t ip = p.l3_offset;
  size_t addr_at = ip + (side == Side::Source ? 12 : 16);
  if (frame.size() < ip + 20) return DropReason::Ipv4Truncated;
  uint32_t old_addr =
      static_cast<uint32_t>(read16(frame, addr_at)) << 16 | read16(frame, addr_at + 2);
  uint32_t new_addr = address.host();
  write16(frame, addr_at, static_cast<uint16_t>(new_addr >> 16));
  write16(frame, addr_at + 2, static_cast<uint16_t>(new_addr));
  write16(frame, ip + 10, checksumUpdate32(read16(frame, ip + 10), old_addr, new_addr));
  if (p.l4_offset == 0) return DropReason::None;  // later fragment, or no L4 view

  size_t l4 = p.l4_offset;
  switch (p.key.ip_proto) {
    case packet::ipproto::kTcp:
    case packet::ipproto::kUdp: {
      bool udp = p.key.ip_proto == packet::ipproto::kUdp;
      size_t sum_at = l4 + (udp ? 6 : 16);
      uint16_t sum = read16(frame, sum_at);
      bool has_sum = !udp || sum != 0;  // UDP over IPv4 may carry no checksum
      if (has_sum) sum = checksumUpdate32(sum, old_addr, new_addr);  // pseudo-header
      if (port) {
        size_t port_at = l4 + (side == Side::Source ? 0 : 2);
        uint16_t old_port = read16(frame, port_at);
        write16(frame, port_at, *port);
        if (has_sum) sum = checksumUpdate16(sum, old_port, *port);
      }
      if (has_sum) write16(frame, sum_at, udp && sum == 0 ? 0xffff : sum);
      break;
    }
    case packet::ipproto::kIcmp:
      // No pseudo-header; the echo identifier stands for the port.
      if (port && (p.key.tp_src == 8 || p.key.tp_src == 0)) {
        uint16_t old_id = read16(frame, l4 + 4);
        write16(frame, l4 + 4, *port);
        write16(frame, l4 + 2, checksumUpdate16(read16(frame, l4 + 2), old_id, *port));
      }
      break;
    default:
      break;
  }
  return DropReason::None;
}

PortAllocator::Pool& PortAllocator::pool(packet::Ipv4Address external, uint8_t protocol) {
  Pool& p = pools_[{external.host(), protocol}];
  if (p.used.empty()) p.used.assign(static_cast<size_t>(last_ - first_) + 1, false);
  return p;
}

std::optional<uint16_t> PortAllocator::allocate(packet::Ipv4Address external, uint8_t protocol) {
  Pool& p = pool(external, protocol);
  size_t n = p.used.size();
  if (p.count == n) {
    ++exhausted_;
    return std::nullopt;
  }
  for (size_t i = 0; i < n; ++i) {
    size_t at = (p.next + i) % n;
    if (!p.used[at]) {
      p.used[at] = true;
      ++p.count;
      p.next = (at + 1) % n;
      return static_cast<uint16_t>(first_ + at);
    }
  }
  return std::nullopt;  // not reached: count said there was room
}

void PortAllocator::release(packet::Ipv4Address external, uint8_t protocol, uint16_t port) {
  if (port < first_ || port > last_) return;
  Pool& p = pool(external, protocol);
  size_t at = port - first_;
  if (p.used[at]) {
    p.used[at] = false;
    --p.count;
  }
}

size_t PortAllocator::inUse(packet::Ipv4Address external, uint8_t protocol) const {
  auto it = pools_.find({external.host(), protocol});
  return it == pools_.end() ? 0 : it->second.count;
}

}  // namespace canopy::datapath::nat
