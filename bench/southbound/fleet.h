#pragma once
// What the southbound cluster benchmark's processes share: one slot per
// agent in a file on /dev/shm, written by the fleet process that runs the
// agent (how many ports its view holds, and when that last changed, on the
// machine's monotonic clock) and read by the driver.

#include <atomic>
#include <cstdint>

namespace canopy::bench {

struct FleetSlot {
  std::atomic<uint32_t> ports{0};
  std::atomic<uint32_t> views{0};      // views applied
  std::atomic<int64_t> changed_ns{0};  // CLOCK_MONOTONIC when `ports` last changed
  std::atomic<uint32_t> connected{0};
  uint32_t pad = 0;
};
static_assert(sizeof(FleetSlot) == 24);

}  // namespace canopy::bench
