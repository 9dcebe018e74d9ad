#pragma once
// A token bucket that holds one port's traffic in one direction to its QoS
// bandwidth limit (Neutron's bandwidth_limit rule): `kbps` kilobits per
// second, bursts of `burst_kbits` (0: 80 % of a second's worth, Neutron's
// default for Open vSwitch).
//
// A packet passes while the bucket is not in debt and takes its bytes,
// which may leave it in debt: a GSO super-frame bigger than the whole burst
// (64 KiB against a small limit) still passes, and the bucket's debt holds
// back what follows until the rate has paid for it, so that the average
// stays the limit whatever the frames' sizes.
//
//   Policer p;
//   p.configure(10'000, 0);                 // 10 Mbit/s
//   if (!p.admit(frame_bytes, now)) drop(); // over the limit
//   p.admit(frame_bytes, now, 20'000, 0);   // the limit changed: taken first
//
// RateLimiter is the same bucket counting events: one port's slow-path
// work of one kind (slow-path protection, datapath.h's SlowPathLimits).
//
// Thread-safety: every member function from any thread (the workers of a
// host share a port's bucket).

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "base/clock.h"
#include "base/mutex.h"

namespace canopy::datapath::pipeline {

// Tokens refilled at `per_second` up to `burst`: take() passes while the
// bucket is not in debt and takes what it is asked, which may leave it in
// debt. Starts full. Not thread-safe (Policer and RateLimiter lock it).
class TokenBucket {
 public:
  void setLimit(double per_second, double burst) {
    per_ns_ = per_second / 1e9;
    burst_ = burst;
    tokens_ = std::min(tokens_, burst_);
  }
  bool take(double amount, SteadyTime now) {
    if (!started_) {
      started_ = true;
      last_ = now;
      tokens_ = burst_;
    }
    if (now > last_) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count();
      tokens_ = std::min(burst_, tokens_ + static_cast<double>(ns) * per_ns_);
      last_ = now;
    }
    if (tokens_ < 0) return false;
    tokens_ -= amount;
    return true;
  }

 private:
  double per_ns_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  SteadyTime last_{};
  bool started_ = false;
};

class Policer {
 public:
  // Changes the limit; the tokens held stay (within the new burst).
  void configure(uint64_t kbps, uint64_t burst_kbits) {
    MaybeLock<SpinLock> lock(mu_, true);
    setLimit(kbps, burst_kbits);
  }

  // Whether `bytes` sent at `now` are within the limit (they are then
  // counted against it); with a limit, that one (changed first if it
  // differs: one lock per packet either way).
  bool admit(uint64_t bytes, SteadyTime now, uint64_t kbps, uint64_t burst_kbits) {
    MaybeLock<SpinLock> lock(mu_, true);
    if (kbps != kbps_ || burst_kbits != burst_kbits_) setLimit(kbps, burst_kbits);
    return bucket_.take(static_cast<double>(bytes), now);
  }
  bool admit(uint64_t bytes, SteadyTime now) {
    MaybeLock<SpinLock> lock(mu_, true);
    return bucket_.take(static_cast<double>(bytes), now);
  }

 private:
  void setLimit(uint64_t kbps, uint64_t burst_kbits) CANOPY_REQUIRES(mu_) {
    kbps_ = kbps;
    burst_kbits_ = burst_kbits;
    const uint64_t burst = burst_kbits != 0 ? burst_kbits : kbps * 8 / 10;
    bucket_.setLimit(static_cast<double>(kbps) * 1000.0 / 8.0,
                     static_cast<double>(burst) * 1000.0 / 8.0);
  }

  mutable SpinLock mu_;
  uint64_t kbps_ CANOPY_GUARDED_BY(mu_) = 0;
  uint64_t burst_kbits_ CANOPY_GUARDED_BY(mu_) = 0;
  TokenBucket bucket_ CANOPY_GUARDED_BY(mu_);
};

// Events (one port's slow-path work of one kind) at most `per_second` on
// average, in bursts of `burst`; any thread.
class RateLimiter {
 public:
  bool admit(SteadyTime now, uint32_t per_second, uint32_t burst) {
    MaybeLock<SpinLock> lock(mu_, true);
    if (per_second != per_second_ || burst != burst_) {
      per_second_ = per_second;
      burst_ = burst;
      bucket_.setLimit(per_second, burst);
    }
    return bucket_.take(1, now);
  }

 private:
  SpinLock mu_;
  uint32_t per_second_ CANOPY_GUARDED_BY(mu_) = 0;
  uint32_t burst_ CANOPY_GUARDED_BY(mu_) = 0;
  TokenBucket bucket_ CANOPY_GUARDED_BY(mu_);
};

}  // namespace canopy::datapath::pipeline
