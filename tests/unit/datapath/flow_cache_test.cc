// The flow cache: hits, tag invalidation that spares the rest, LRU
// eviction, and random operations checked against a trivial oracle.

#include "datapath/flowcache/flow_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace canopy::datapath::flowcache {
namespace {

CacheKey key(uint16_t port, uint32_t context = 0) {
  CacheKey k;
  k.flow.tp_dst = port;
  k.flow.ip_proto = packet::ipproto::kTcp;
  k.context = context;
  return k;
}

TEST(FlowCache, HitsAndMisses) {
  FlowCache<int> cache(8);
  EXPECT_EQ(cache.find(key(1)), nullptr);
  Tag tags[] = {100};
  cache.insert(key(1), 7, tags);
  ASSERT_NE(cache.find(key(1)), nullptr);
  EXPECT_EQ(*cache.find(key(1)), 7);
  EXPECT_EQ(cache.find(key(1, 1)), nullptr);  // another conntrack context
  EXPECT_EQ(cache.stats().hits, 2u);
  EXPECT_EQ(cache.stats().misses, 2u);
}

TEST(FlowCache, InvalidationByTagSparesTheRest) {
  FlowCache<int> cache(8);
  Tag port_a[] = {1, 10};  // depends on port 1 and router 10
  Tag port_b[] = {2, 10};
  Tag port_c[] = {3};
  cache.insert(key(1), 1, port_a);
  cache.insert(key(2), 2, port_b);
  cache.insert(key(3), 3, port_c);
  EXPECT_EQ(cache.invalidate(1), 1u);
  EXPECT_EQ(cache.find(key(1)), nullptr);
  EXPECT_NE(cache.find(key(2)), nullptr);
  EXPECT_EQ(cache.invalidate(10), 1u);  // only key 2 is left with the router
  EXPECT_EQ(cache.find(key(2)), nullptr);
  EXPECT_NE(cache.find(key(3)), nullptr);
  EXPECT_EQ(cache.invalidate(99), 0u);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(FlowCache, EvictsTheLeastRecentlyUsed) {
  FlowCache<int> cache(2);
  cache.insert(key(1), 1, {});
  cache.insert(key(2), 2, {});
  ASSERT_NE(cache.find(key(1)), nullptr);  // 2 is now the oldest
  cache.insert(key(3), 3, {});
  EXPECT_EQ(cache.find(key(2)), nullptr);
  EXPECT_NE(cache.find(key(1)), nullptr);
  EXPECT_NE(cache.find(key(3)), nullptr);
  EXPECT_EQ(cache.stats().evictions, 1u);
}

// Random inserts, finds and invalidations against an oracle that keeps a
// plain list in recency order.
TEST(FlowCache, AgreesWithAnOracle) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr size_t kCapacity = 16;
  FlowCache<int> cache(kCapacity);
  struct Item {
    uint16_t port;
    int value;
    std::vector<Tag> tags;
  };
  std::vector<Item> oracle;  // most recent first
  for (int step = 0; step < 20000; ++step) {
    auto port = static_cast<uint16_t>(rng() % 40);
    switch (rng() % 3) {
      case 0: {
        std::vector<Tag> tags;
        for (size_t i = rng() % 3; i > 0; --i) tags.push_back(rng() % 8);
        int value = static_cast<int>(rng() % 1000);
        cache.insert(key(port), value, tags);
        std::erase_if(oracle, [&](const Item& it) { return it.port == port; });
        if (oracle.size() == kCapacity) oracle.pop_back();
        oracle.insert(oracle.begin(), {port, value, tags});
        break;
      }
      case 1: {
        const int* got = cache.find(key(port));
        auto it = std::find_if(oracle.begin(), oracle.end(),
                               [&](const Item& i) { return i.port == port; });
        ASSERT_EQ(got != nullptr, it != oracle.end()) << "step " << step;
        if (got != nullptr) {
          ASSERT_EQ(*got, it->value) << "step " << step;
          std::rotate(oracle.begin(), it, it + 1);
        }
        break;
      }
      default: {
        Tag tag = rng() % 8;
        size_t n = cache.invalidate(tag);
        size_t before = oracle.size();
        std::erase_if(oracle, [&](const Item& i) {
          return std::find(i.tags.begin(), i.tags.end(), tag) != i.tags.end();
        });
        ASSERT_EQ(n, before - oracle.size()) << "step " << step;
      }
    }
    ASSERT_EQ(cache.size(), oracle.size()) << "step " << step;
  }
}

}  // namespace
}  // namespace canopy::datapath::flowcache
