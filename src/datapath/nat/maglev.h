#pragma once
// Maglev consistent hashing (Eisenbud et al., NSDI 2016) for load
// balancers' members: a lookup table of a prime size M in which each member
// holds a share of the entries proportional to its weight. Every host builds
// the same table from the same members, so every host sends a flow to the
// same member without asking anyone; when a member comes or goes, only about
// its share of the entries changes owner, so other members keep their flows.
//
//   MaglevTable t({{.name = "10.0.0.11:80", .weight = 1}, {.name = "10.0.0.12:80", .weight = 3}});
//   std::optional<size_t> member = t.pick(flowHash(key));   // an index into the members
//
// Names identify members across hosts (the address and port, as the
// southbound carries them); hashes are Canopy's own (FNV-1a, then a 64-bit
// finaliser), never the standard library's, so that every build agrees.
//
// Thread-safety: a built table is immutable; pick() from any thread.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace canopy::datapath::nat {

struct MaglevMember {
  std::string name;
  uint32_t weight = 1;  // 0: takes no new flows
};

class MaglevTable {
 public:
  // The paper's size for up to hundreds of members: a prime well above
  // 100 x the members, so shares stay within about 1% of the weights.
  static constexpr uint32_t kDefaultSize = 65537;

  // `size` must be prime (the permutations must visit every entry).
  explicit MaglevTable(std::span<const MaglevMember> members, uint32_t size = kDefaultSize);

  // The member a flow with this hash goes to; nullopt when no member takes
  // flows (none, or every weight 0).
  std::optional<size_t> pick(uint64_t flow_hash) const {
    if (entries_.empty()) return std::nullopt;
    return entries_[flow_hash % entries_.size()];
  }
  // The member owning each entry (empty when none takes flows).
  std::span<const uint16_t> entries() const { return entries_; }

 private:
  std::vector<uint16_t> entries_;
};

// A 64-bit hash of bytes, the same on every host and build.
uint64_t stableHash(std::string_view bytes, uint64_t seed = 0);

}  // namespace canopy::datapath::nat
