#include "datapath/packet/checksum.h"

#include <bit>
#include <cstring>

namespace canopy::datapath::packet {

// The one's-complement sum does not depend on byte order (RFC 1071 section
// 2(B)): the bytes are added as native 32-bit words, two running sums wide
// (a 64 KiB super-frame's checksum is summed in software), and the folded
// result swapped to big-endian words at the end.
uint32_t sumWords(std::span<const uint8_t> bytes, uint32_t sum) noexcept {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  uint64_t a = 0, b = 0;
  for (; n >= 16; p += 16, n -= 16) {
    uint32_t w[4];
    std::memcpy(w, p, sizeof(w));
    a += w[0];
    b += w[1];
    a += w[2];
    b += w[3];
  }
  a += b;
  for (; n >= 4; p += 4, n -= 4) {
    uint32_t w;
    std::memcpy(&w, p, sizeof(w));
    a += w;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, sizeof(w));
    a += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    uint8_t last[2] = {*p, 0};  // an odd last byte, padded with zero
    uint16_t w;
    std::memcpy(&w, last, sizeof(w));
    a += w;
  }
  while (a >> 16) a = (a & 0xffff) + (a >> 16);
  auto folded = static_cast<uint16_t>(a);
  if constexpr (std::endian::native == std::endian::little) {
    folded = static_cast<uint16_t>(folded >> 8 | folded << 8);
  }
  uint64_t s = uint64_t{sum} + folded;
  while (s >> 32) s = (s & 0xffffffff) + (s >> 32);
  return static_cast<uint32_t>(s);
}

uint16_t finish(uint32_t sum) noexcept {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint32_t pseudoHeaderSum(const Ipv4Address& src, const Ipv4Address& dst, uint8_t protocol,
                         uint32_t length) noexcept {
  uint32_t s = sumWords(src.value.b);
  s = sumWords(dst.value.b, s);
  return s + protocol + (length >> 16) + (length & 0xffff);
}

uint32_t pseudoHeaderSum(const Ipv6Address& src, const Ipv6Address& dst, uint8_t protocol,
                         uint32_t length) noexcept {
  uint32_t s = sumWords(src.bytes);
  s = sumWords(dst.bytes, s);
  return s + protocol + (length >> 16) + (length & 0xffff);
}

uint16_t checksumUpdate16(uint16_t checksum, uint16_t from, uint16_t to) noexcept {
  uint32_t s = static_cast<uint16_t>(~checksum);
  s += static_cast<uint16_t>(~from);
  s += to;
  return finish(s);
}

uint16_t checksumUpdate32(uint16_t checksum, uint32_t from, uint32_t to) noexcept {
  uint16_t c = checksumUpdate16(checksum, static_cast<uint16_t>(from >> 16),
                                static_cast<uint16_t>(to >> 16));
  return checksumUpdate16(c, static_cast<uint16_t>(from), static_cast<uint16_t>(to));
}

}  // namespace canopy::datapath::packet
