#include "base/counters.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace canopy {
namespace {

TEST(Counters, SameNameSameCounter) {
  Counters counters;
  Counter& a = counters.get("rx_packets");
  a.add();
  counters.get("rx_packets").add(4);
  EXPECT_EQ(a.value(), 5u);
  counters.get("drops");
  auto snap = counters.snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].first, "drops");
  EXPECT_EQ(snap[0].second, 0u);
  EXPECT_EQ(snap[1].first, "rx_packets");
  EXPECT_EQ(snap[1].second, 5u);
}

TEST(Counters, ConcurrentBumpsAreAllCounted) {
  Counters counters;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      Counter& c = counters.get("hits");
      for (int i = 0; i < kPerThread; ++i) c.add();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counters.get("hits").value(), uint64_t{kThreads * kPerThread});
}

}  // namespace
}  // namespace canopy
