#include "base/clock.h"

#include <gtest/gtest.h>

namespace canopy {
namespace {

using namespace std::chrono_literals;

TEST(FakeClock, MovesOnlyWhenAdvanced) {
  FakeClock clock;
  auto t0 = clock.now();
  auto w0 = clock.wallNow();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(1500ms);
  EXPECT_EQ(clock.now() - t0, 1500ms);
  EXPECT_EQ(clock.wallNow() - w0, 1500ms);
}

TEST(FakeClock, WallStartsAt2026) {
  FakeClock clock;
  auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(clock.wallNow().time_since_epoch()).count();
  EXPECT_EQ(secs, 1767225600);
}

TEST(SystemClock, IsMonotonic) {
  SystemClock clock;
  auto a = clock.now();
  auto b = clock.now();
  EXPECT_LE(a, b);
}

}  // namespace
}  // namespace canopy
