#include "datapath/nat/maglev.h"

#include <algorithm>
#include <limits>

#include "base/assert.h"
#include "base/hash.h"

namespace canopy::datapath::nat {
uint64_t stableHash(std::string_view bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ mix64(seed);
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return mix64(h);
}

MaglevTable::MaglevTable(std::span<const MaglevMember> members, uint32_t size) {
  CANOPY_ASSERT(size > 2);
  CANOPY_ASSERT(members.size() < std::numeric_limits<uint16_t>::max());
  uint64_t total = 0;
  for (const auto& m : members) total += m.weight;
  if (total == 0) return;

  // Each member's permutation of the entries: offset + j * skip (mod size).
  struct Turn {
    uint64_t offset, skip, next = 0;
  };
  std::vector<Turn> turns;
  turns.reserve(members.size());
  for (const auto& m : members) {
    turns.push_back(
        {.offset = stableHash(m.name, 1) % size, .skip = stableHash(m.name, 2) % (size - 1) + 1});
  }
  constexpr uint16_t kFree = std::numeric_limits<uint16_t>::max();
  entries_.assign(size, kFree);
  // Rounds in which each member claims as many entries as its weight, so
  // that shares follow weights; a member claims its next free entry in its
  // own permutation.
  uint32_t filled = 0;
  while (filled < size) {
    for (size_t i = 0; i < members.size() && filled < size; ++i) {
      for (uint32_t w = 0; w < members[i].weight && filled < size; ++w) {
        Turn& t = turns[i];
        uint64_t at = (t.offset + t.next * t.skip) % size;
        while (entries_[at] != kFree) {
          ++t.next;
          at = (t.offset + t.next * t.skip) % size;
        }
        entries_[at] = static_cast<uint16_t>(i);
        ++t.next;
        ++filled;
      }
    }
  }
}

}  // namespace canopy::datapath::nat
