#include "base/log.h"

#include <gtest/gtest.h>

namespace canopy {
namespace {

using namespace std::chrono_literals;

TEST(Logging, RejectsUnknownLevel) {
  auto r = setupLogging("loud");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::InvalidArgument);
  EXPECT_NE(r.error().message().find("loud"), std::string::npos);
  EXPECT_TRUE(setupLogging("warn"));
  EXPECT_TRUE(setupLogging("off"));  // twice in one process is fine
}

TEST(RateLimit, AllowsBurstPerPeriodAndCountsTheRest) {
  FakeClock clock;
  RateLimit limit(clock, 1s, 3);
  EXPECT_TRUE(limit.allow());
  EXPECT_TRUE(limit.allow());
  EXPECT_TRUE(limit.allow());
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(limit.allow());
  clock.advance(999ms);
  EXPECT_FALSE(limit.allow());
  clock.advance(1ms);
  EXPECT_TRUE(limit.allow());
  EXPECT_EQ(limit.suppressedBeforeLast(), 11u);
  EXPECT_TRUE(limit.allow());
  EXPECT_EQ(limit.suppressedBeforeLast(), 0u);
}

}  // namespace
}  // namespace canopy
