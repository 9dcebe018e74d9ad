#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "base/assert.h"
#include "base/result.h"

namespace canopy {
namespace {
std::atomic<uint64_t> g_bug_count{0};
}  // namespace

uint64_t bugCount() noexcept { return g_bug_count.load(std::memory_order_relaxed); }

namespace detail {

void checkFailed(const char* expr, const char* message, const char* file, int line) noexcept {
  // stderr directly: the logger may be what is broken.
  std::fprintf(stderr, "%s:%d: CANOPY_CHECK(%s) failed%s%s\n", file, line, expr,
               message[0] != '\0' ? ": " : "", message);
  std::fflush(stderr);
  std::abort();
}

void bugHit(const char* message, const char* file, int line) noexcept {
#ifdef NDEBUG
  g_bug_count.fetch_add(1, std::memory_order_relaxed);
  try {
    spdlog::error("BUG at {}:{}: {}", file, line, message);
  } catch (...) {
    // Logging must not turn a survivable bug into a crash.
  }
#else
  checkFailed("CANOPY_BUG", message, file, line);
#endif
}

}  // namespace detail

std::string_view errcName(Errc code) noexcept {
  switch (code) {
    case Errc::InvalidArgument:
      return "InvalidArgument";
    case Errc::NotFound:
      return "NotFound";
    case Errc::Conflict:
      return "Conflict";
    case Errc::PreconditionFailed:
      return "PreconditionFailed";
    case Errc::Compacted:
      return "Compacted";
    case Errc::Unauthenticated:
      return "Unauthenticated";
    case Errc::PermissionDenied:
      return "PermissionDenied";
    case Errc::Unavailable:
      return "Unavailable";
    case Errc::Internal:
      return "Internal";
  }
  return "Unknown";
}

std::string Error::toString() const {
  std::string out(errcName(code_));
  out += ": ";
  out += message_;
  return out;
}

Error Error::withContext(std::string_view context) const {
  std::string message(context);
  message += ": ";
  message += message_;
  return Error(code_, std::move(message), reason_);
}

}  // namespace canopy
