#pragma once
// IPv4 and IPv6 addresses and prefixes for IPAM and validation: parsing with
// Neutron's strictness, containment, arithmetic over the address space.
//
//   auto cidr = Cidr::parse("10.0.0.0/24");
//   IpAddress gw = cidr->first().plus(1);      // 10.0.0.1
//   cidr->contains(*IpAddress::parse("10.0.0.9"));
//
// Thread-safety: value types.

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace canopy::model {

__extension__ typedef unsigned __int128 U128;

class IpAddress {
 public:
  IpAddress() = default;
  // "10.0.0.1" or "fd00::1" (no zone, no prefix).
  static Result<IpAddress> parse(std::string_view text);
  static IpAddress fromValue(int version, U128 value);

  int version() const { return version_; }
  U128 value() const { return value_; }
  std::string toString() const;
  IpAddress plus(U128 n) const { return fromValue(version_, value_ + n); }
  IpAddress minus(U128 n) const { return fromValue(version_, value_ - n); }

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress& a, const IpAddress& b) {
    if (a.version_ != b.version_) return a.version_ <=> b.version_;
    return a.value_ <=> b.value_;
  }

 private:
  int version_ = 4;
  U128 value_ = 0;
};

class Cidr {
 public:
  // "10.0.0.0/24". Host bits must be zero (Neutron suggests the right form).
  static Result<Cidr> parse(std::string_view text);

  int version() const { return network_.version(); }
  int prefix() const { return prefix_; }
  IpAddress first() const { return network_; }
  IpAddress last() const;
  // Number of addresses, saturated at 2^127 for /0 in IPv6.
  U128 size() const;
  bool contains(const IpAddress& ip) const;
  bool overlaps(const Cidr& other) const;
  std::string toString() const;

  friend bool operator==(const Cidr&, const Cidr&) = default;

 private:
  IpAddress network_;
  int prefix_ = 0;
};

}  // namespace canopy::model
