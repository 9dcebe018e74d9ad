#pragma once
// A set of addresses of one IP version, kept as disjoint, ordered ranges:
// subnet pools' prefixes (merged as Neutron's netaddr.IPSet compacts them),
// what is left of a pool after its subnets, whether a prefix is free.
//
//   IpSet pool(4);
//   pool.add(*IpPrefix::parse("10.0.0.0/24"));
//   pool.remove(*IpPrefix::parse("10.0.0.0/26"));
//   pool.cidrs();   // 10.0.0.64/26, 10.0.0.128/25
//
// Thread-safety: a value type.

#include <vector>

#include "base/ip.h"

namespace canopy {

class IpSet {
 public:
  explicit IpSet(int version) : version_(version) {}

  int version() const { return version_; }
  bool empty() const { return ranges_.empty(); }
  // Prefixes of another version are ignored.
  void add(const IpPrefix& prefix);
  void remove(const IpPrefix& prefix);
  void remove(const IpSet& other);
  bool intersects(const IpPrefix& prefix) const;
  bool intersects(const IpSet& other) const;
  // Every address of `prefix` is in the set.
  bool contains(const IpPrefix& prefix) const;
  bool contains(const IpSet& other) const;
  // The fewest CIDRs that cover the set, in address order.
  std::vector<IpPrefix> cidrs() const;

  friend bool operator==(const IpSet&, const IpSet&) = default;

 private:
  struct Range {
    U128 first, last;  // inclusive
    friend bool operator==(const Range&, const Range&) = default;
  };
  void addRange(U128 first, U128 last);
  void removeRange(U128 first, U128 last);

  int version_;
  std::vector<Range> ranges_;  // disjoint, not adjacent, ascending
};

}  // namespace canopy
