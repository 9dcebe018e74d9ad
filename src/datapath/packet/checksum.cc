#include "datapath/packet/checksum.h"

namespace canopy::datapath::packet {

uint32_t sumWords(std::span<const uint8_t> bytes, uint32_t sum) noexcept {
  uint64_t s = sum;
  size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) s += static_cast<uint32_t>(bytes[i] << 8 | bytes[i + 1]);
  if (i < bytes.size()) s += static_cast<uint32_t>(bytes[i] << 8);
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
