#pragma once
// splitmix64's finaliser: every output bit depends on every input bit. Its
// constants are fixed, so hashes that hosts must agree on (Maglev tables)
// may use it.
//
// Thread-safety: a pure function.

#include <cstdint>

namespace canopy {

constexpr uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace canopy
