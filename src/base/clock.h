#pragma once
// Time as an interface, so that timeouts, expiry and ageing are tested with a
// FakeClock that the test advances: no sleeps in unit tests.
//
//   SystemClock clock;                      // production
//   FakeClock fake; fake.advance(30s);      // tests
//   Deadline d = clock.now() + 5s;
//
// Thread-safety: both implementations may be read from any thread; FakeClock
// may be advanced from any thread too.

#include <atomic>
#include <chrono>

namespace canopy {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time for timeouts and durations.
  virtual SteadyTime now() const noexcept = 0;
  // Calendar time for timestamps shown to users (created_at, token expiry).
  virtual WallTime wallNow() const noexcept = 0;
};

class SystemClock final : public Clock {
 public:
  SteadyTime now() const noexcept override { return std::chrono::steady_clock::now(); }
  WallTime wallNow() const noexcept override { return std::chrono::system_clock::now(); }
};

// Starts at an arbitrary fixed point (steady) and 2026-01-01T00:00:00Z (wall);
// moves only when advanced. Both move together.
class FakeClock final : public Clock {
 public:
  static constexpr std::chrono::nanoseconds kWallStart{1767225600LL * 1'000'000'000LL};

  SteadyTime now() const noexcept override {
    return SteadyTime(std::chrono::nanoseconds(offset_ns_.load(std::memory_order_acquire)));
  }
  WallTime wallNow() const noexcept override {
    return WallTime(std::chrono::duration_cast<WallTime::duration>(
        kWallStart + std::chrono::nanoseconds(offset_ns_.load(std::memory_order_acquire))));
  }
  void advance(std::chrono::nanoseconds by) noexcept {
    offset_ns_.fetch_add(by.count(), std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> offset_ns_{0};
};

}  // namespace canopy
