// The in-memory model follows the store, and its indexes always equal a
// recomputation from the documents, whatever order puts and deletes come in.

#include "state/model_state.h"

#include <gtest/gtest.h>

#include <random>

#include "store/sqlite_store.h"
#include "testing/temp_dir.h"

namespace canopy::state {
namespace {

// What the indexes should hold, computed from scratch.
std::map<std::string, std::map<std::string, std::set<std::string, std::less<>>>> recompute(
    const Tables& tables) {
  std::map<std::string, std::map<std::string, std::set<std::string, std::less<>>>> out;
  for (const auto& spec : defaultIndexes()) {
    for (const auto& [id, d] : tables.collection(spec.collection)) {
      for (const auto& key : spec.keys(d.doc)) out[spec.name][key].insert(id);
    }
  }
  return out;
}

TEST(ModelState, IndexesMatchARecomputationAfterRandomChanges) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  canopy::testing::TempDir dir;
  auto store = store::SqliteStore::open({.path = dir.file("canopy.db")});
  ASSERT_TRUE(store);
  ModelState state(**store);
  ASSERT_TRUE(state.start());

  const char* nets[] = {"n1", "n2", "n3"};
  for (int step = 0; step < 200; ++step) {
    std::string id = "p" + std::to_string(rng() % 12);
    if (rng() % 4 == 0) {
      ASSERT_TRUE(state.write({}, [&](Transaction& txn) -> Result<void> {
        txn.erase("ports", id);
        return ok();
      }));
      continue;
    }
    Json doc = {{"id", id},
                {"network_id", nets[rng() % 3]},
                {"mac_address", "fa:16:3e:00:00:0" + std::to_string(rng() % 4)},
                {"fixed_ips", Json::array()}};
    for (uint64_t i = 0, n = rng() % 3; i < n; ++i) {
      doc["fixed_ips"].push_back({{"subnet_id", "s" + std::to_string(rng() % 3)},
                                  {"ip_address", "10.0.0." + std::to_string(rng() % 8)}});
    }
    ASSERT_TRUE(state.write({}, [&](Transaction& txn) -> Result<void> {
      txn.update("ports", id, doc);
      return ok();
    }));
  }
  state.read([&](const Tables& tables) {
    auto want = recompute(tables);
    // Every key the random docs can produce, so stale entries show too.
    std::vector<std::pair<std::string, std::string>> universe;
    for (const char* n : nets) {
      universe.emplace_back("ports.network", n);
      for (int m = 0; m < 4; ++m) {
        universe.emplace_back("ports.mac",
                              std::string(n) + " fa:16:3e:00:00:0" + std::to_string(m));
      }
      for (int i = 0; i < 8; ++i) {
        universe.emplace_back("ports.address", std::string(n) + " 10.0.0." + std::to_string(i));
      }
    }
    for (int i = 0; i < 3; ++i) universe.emplace_back("ports.subnet", "s" + std::to_string(i));
    for (const auto& [index, key] : universe) {
      EXPECT_EQ(tables.lookup(index, key), want[index][key]) << index << " " << key;
    }
    return 0;
  });

  // A restart rebuilds the same indexes from the store.
  store::Revision before = state.appliedRevision();
  state.stop();
  ModelState again(**store);
  ASSERT_TRUE(again.start());
  EXPECT_EQ(again.appliedRevision(), before);
  auto a = state.read([](const Tables& t) { return recompute(t); });
  auto b = again.read([](const Tables& t) { return recompute(t); });
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace canopy::state
