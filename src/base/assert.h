#pragma once
// Assertions. None of them is for input that can be wrong: packet bytes, API
// requests, config or a syscall that can fail get a Result or a drop reason.
//
//   CANOPY_CHECK(cond)       fatal in every build: nothing can recover.
//   CANOPY_CHECK_MSG(c, m)   the same, with a C-string message.
//   CANOPY_ASSERT(cond)      a debug-build invariant; compiled out with NDEBUG.
//   CANOPY_BUG(msg)          "cannot happen" that the program can survive:
//                            aborts in debug builds, logs and counts in release.
//
// Thread-safety: all may be used from any thread.

#include <cstdint>

namespace canopy {

// How many CANOPY_BUG()s fired in this process (release builds only get here).
uint64_t bugCount() noexcept;

namespace detail {
[[noreturn]] void checkFailed(const char* expr, const char* message, const char* file,
                              int line) noexcept;
void bugHit(const char* message, const char* file, int line) noexcept;
}  // namespace detail
}  // namespace canopy

#define CANOPY_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::canopy::detail::checkFailed(#cond, "", __FILE__, __LINE__))

#define CANOPY_CHECK_MSG(cond, msg) \
  ((cond) ? static_cast<void>(0) : ::canopy::detail::checkFailed(#cond, (msg), __FILE__, __LINE__))

#ifdef NDEBUG
#define CANOPY_ASSERT(cond) static_cast<void>(sizeof(static_cast<bool>(cond)))
#else
#define CANOPY_ASSERT(cond) CANOPY_CHECK(cond)
#endif

#define CANOPY_BUG(msg) ::canopy::detail::bugHit((msg), __FILE__, __LINE__)
