#pragma once
// Logging is spdlog; this sets it up the same way in every Canopy program.
// Code logs with spdlog directly: `spdlog::info("store opened at revision {}", rev);`
// The datapath never logs per packet: it counts, and logs through a RateLimit.
//
// Thread-safety: setupLogging() once at start-up, before other threads;
// RateLimit::allow() from one thread per instance.

#include <chrono>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/result.h"

namespace canopy {

// Levels by name: trace, debug, info, warn, error, critical, off.
Result<void> setupLogging(std::string_view level);

// Allows at most `burst` events per `period`; the rest are counted as
// suppressed so the next allowed line can say how many were skipped.
class RateLimit {
 public:
  RateLimit(const Clock& clock, std::chrono::nanoseconds period, int burst)
      : clock_(clock), period_(period), burst_(burst) {}

  // True if this event may be logged now.
  bool allow() noexcept;
  // How many were refused just before the most recent allowed event, for its
  // log line: "... (37 similar lines suppressed)".
  uint64_t suppressedBeforeLast() const noexcept { return reported_suppressed_; }
  // " (N similar lines suppressed)", or "" when none were.
  std::string suppressedNote() const;

 private:
  const Clock& clock_;
  std::chrono::nanoseconds period_;
  int burst_;
  SteadyTime window_start_{};
  int in_window_ = 0;
  uint64_t suppressed_ = 0;
  uint64_t reported_suppressed_ = 0;
};

}  // namespace canopy
