#include "base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <string>

namespace canopy {

Result<void> setupLogging(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps unknown names to `off`; only "off" itself may mean off.
  if (parsed == spdlog::level::off && level != "off") {
    return Error(Errc::InvalidArgument,
                 "unknown log level '" + std::string(level) +
                     "' (expected trace, debug, info, warn, error, critical or off)");
  }
  spdlog::drop("canopy");
  auto logger = spdlog::stderr_color_mt("canopy");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(std::move(logger));
  return ok();
}

std::string RateLimit::suppressedNote() const {
  if (reported_suppressed_ == 0) return "";
  return " (" + std::to_string(reported_suppressed_) + " similar lines suppressed)";
}

bool RateLimit::allow() noexcept {
  auto now = clock_.now();
  if (now - window_start_ >= period_) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ < burst_) {
    ++in_window_;
    reported_suppressed_ = suppressed_;
    suppressed_ = 0;
    return true;
  }
  ++suppressed_;
  return false;
}

}  // namespace canopy
