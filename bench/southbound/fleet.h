#pragma once
// What the southbound cluster benchmark's processes share: one slot per
// agent in a file on /dev/shm, written by the fleet process that runs the
// agent (how many ports its view holds, and when that last changed, on the
// machine's monotonic clock) and read by the driver; and their helpers.

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace canopy::bench {

struct FleetSlot {
  std::atomic<uint32_t> ports{0};
  std::atomic<uint32_t> views{0};      // views applied
  std::atomic<int64_t> changed_ns{0};  // CLOCK_MONOTONIC when `ports` last changed
  std::atomic<uint32_t> connected{0};
  uint32_t pad = 0;
};
static_assert(sizeof(FleetSlot) == 24);

// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
inline int64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// "a,b,c" -> {"a", "b", "c"} (empty items dropped).
inline std::vector<std::string> splitList(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) out.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace canopy::bench
