#include "base/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace canopy {
namespace {

Result<int> half(int x) {
  if (x % 2 != 0) return Error(Errc::InvalidArgument, "odd: " + std::to_string(x));
  return x / 2;
}

Result<int> quarter(int x) {
  auto h = half(x);
  if (!h) return h.error().withContext("quarter");
  return half(*h);
}

TEST(Result, CarriesValueOrError) {
  auto good = half(8);
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(*good, 4);
  EXPECT_EQ(good.value_or(-1), 4);

  auto bad = half(3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::InvalidArgument);
  EXPECT_EQ(bad.error().message(), "odd: 3");
  EXPECT_EQ(bad.value_or(-1), -1);
}

TEST(Result, ErrorsPropagateWithContext) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "odd: 3");
  auto r2 = quarter(5);
  EXPECT_EQ(r2.error().message(), "quarter: odd: 5");
  EXPECT_EQ(r2.error().toString(), "InvalidArgument: quarter: odd: 5");
}

TEST(Result, HoldsMoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(Result, VoidResult) {
  Result<void> good = ok();
  EXPECT_TRUE(good);
  Result<void> bad = Error(Errc::Conflict, "taken");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::Conflict);
}

TEST(Result, ValueOfErrorIsFatal) {
  auto bad = half(3);
  EXPECT_DEATH((void)bad.value(), "odd: 3");
}

TEST(Errc, EveryCodeHasAName) {
  for (Errc c : {Errc::InvalidArgument, Errc::NotFound, Errc::Conflict, Errc::PreconditionFailed,
                 Errc::Compacted, Errc::Unauthenticated, Errc::PermissionDenied, Errc::Unavailable,
                 Errc::Internal}) {
    EXPECT_NE(errcName(c), "Unknown");
  }
}

}  // namespace
}  // namespace canopy
