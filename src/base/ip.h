#pragma once
// IP addresses and prefixes: the one address type that the model (IPAM,
// validation), the topology the agents run and the packet code share.
// Bytes in network order, so that the same value is a map key in the
// topology, a number for IPAM and four or sixteen bytes for a header.
//
//   auto ip = IpAddress::parse("10.0.0.9");             // Result: a clear error if not
//   auto net = IpPrefix::parseNetwork("10.0.0.0/24");   // host bits must be zero
//   net->contains(*ip);  net->first().plus(1);          // 10.0.0.1
//   IpAddress::v4(192, 168, 0, 1).toString();
//
// Headers keep their own wire layouts (packet::Ipv4Address, a Be32), made
// from and turned into an IpAddress by packet/wire.h.
//
// Thread-safety: value types.

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace canopy {

__extension__ typedef unsigned __int128 U128;

struct IpAddress {
  uint8_t family = 0;  // 4 or 6; 0 for none
  std::array<uint8_t, 16> bytes{};

  static constexpr IpAddress v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return {4, {a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}};
  }
  // "10.0.0.1" or "fd00::1" (no zone, no prefix).
  static Result<IpAddress> parse(std::string_view text);
  // The address of `version` whose number is `value` (IPAM's arithmetic).
  static IpAddress fromValue(int version, U128 value);

  int version() const { return family; }
  bool isV4() const { return family == 4; }
  bool isV6() const { return family == 6; }
  U128 value() const;
  IpAddress plus(U128 n) const { return fromValue(family, value() + n); }
  IpAddress minus(U128 n) const { return fromValue(family, value() - n); }
  // RFC 5952's form for IPv6; "-" for none.
  std::string toString() const;

  friend constexpr bool operator==(const IpAddress&, const IpAddress&) = default;
  // By family, then numerically (the bytes are big-endian).
  friend constexpr auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

struct IpPrefix {
  IpAddress address{};
  uint8_t length = 0;

  // "10.0.0.0/24"; host bits may be set ("10.0.0.5/24": the address and
  // its subnet).
  static Result<IpPrefix> parse(std::string_view text);
  // A network, as Neutron takes a CIDR: host bits must be zero, and the
  // error suggests the right form.
  static Result<IpPrefix> parseNetwork(std::string_view text);

  int version() const { return address.family; }
  IpAddress first() const;  // host bits cleared
  IpAddress last() const;   // host bits set
  // How many addresses, saturated at 2^127 for an IPv6 /0.
  U128 size() const;
  bool contains(const IpAddress& ip) const;
  bool overlaps(const IpPrefix& other) const;
  std::string toString() const;

  friend constexpr bool operator==(const IpPrefix&, const IpPrefix&) = default;
  friend constexpr auto operator<=>(const IpPrefix&, const IpPrefix&) = default;
};

}  // namespace canopy
