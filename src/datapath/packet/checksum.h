#pragma once
// The Internet checksum (RFC 1071) and its incremental update on rewrite
// (RFC 1624), with the pseudo-header sums of TCP, UDP and ICMPv6.
//
//   uint16_t c = checksum(bytes);                 // ready to store (host order)
//   c = checksumUpdate32(c, old_ip, new_ip);     // after NAT rewrote an address
//
// Values are in host order; store them with Be16::of(). Thread-safety: pure.

#include <cstdint>
#include <span>

#include "datapath/packet/wire.h"

namespace canopy::datapath::packet {

// One's-complement sum of 16-bit big-endian words (an odd last byte padded
// with zero), not yet folded or inverted.
uint32_t sumWords(std::span<const uint8_t> bytes, uint32_t sum = 0) noexcept;
// Folds a sum to 16 bits and inverts it: the checksum to store.
uint16_t finish(uint32_t sum) noexcept;
inline uint16_t checksum(std::span<const uint8_t> bytes) noexcept {
  return finish(sumWords(bytes));
}

// Pseudo-header sums (RFC 768/9293 for IPv4, RFC 8200 section 8.1 for IPv6).
uint32_t pseudoHeaderSum(const Ipv4Address& src, const Ipv4Address& dst, uint8_t protocol,
                         uint32_t length) noexcept;
uint32_t pseudoHeaderSum(const Ipv6Address& src, const Ipv6Address& dst, uint8_t protocol,
                         uint32_t length) noexcept;

// The checksum after one 16-bit or 32-bit field changed from `from` to `to`
// (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
uint16_t checksumUpdate16(uint16_t checksum, uint16_t from, uint16_t to) noexcept;
uint16_t checksumUpdate32(uint16_t checksum, uint32_t from, uint32_t to) noexcept;

}  // namespace canopy::datapath::packet
