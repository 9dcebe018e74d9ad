// The etcd backend against real etcd members: failing over between members,
// watches that resume across a member's death, durability across kill -9 of
// etcd itself, and what it refuses to share a cluster with.

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "store/etcd_store.h"
#include "store_fixture.h"

namespace canopy::store {
namespace {

using namespace std::chrono_literals;
using canopy::testing::EtcdCluster;

std::unique_ptr<Store> connect(const EtcdCluster& etcd, std::chrono::milliseconds timeout = 15s) {
  auto options = must(EtcdStore::parse(etcd.endpoints()));
  options.request_timeout = timeout;
  options.connect_timeout = 500ms;
  return must(EtcdStore::open(options));
}

// A put that is tried again when its outcome is unknown (the member died
// while it was in flight): the same value twice is harmless here.
void putSurely(Store& store, const std::string& key, const std::string& value) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto r = store.put(key, value);
    if (r) return;
    ASSERT_EQ(r.error().code(), Errc::Unavailable) << r.error().toString();
  }
  FAIL() << "put " << key << " failed five times";
}

TEST(EtcdStore, WritesAndWatchesGoOnWhenTheirMemberDies) {
  EtcdCluster etcd(3);
  ASSERT_TRUE(etcd.ready()) << etcd.log();
  auto store = connect(etcd);  // member 0 first
  auto watch = must(store->watch("/w/", 0));
  for (int i = 0; i < 20; ++i) putSurely(*store, "/w/" + std::to_string(i), "v");
  etcd.kill(0);
  for (int i = 20; i < 40; ++i) putSurely(*store, "/w/" + std::to_string(i), "v");

  // Every key once, in order: resumed on another member with no gap and no
  // repeat (a put retried after an unknown outcome is a second event).
  std::vector<std::string> keys;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto batch = must(watch->next(1s));
    for (auto& e : batch) {
      if (keys.empty() || keys.back() != e.kv.key) keys.push_back(e.kv.key);
    }
    if (keys.size() >= 40) break;
  }
  ASSERT_EQ(keys.size(), 40u) << etcd.log();
  for (int i = 0; i < 40; ++i) EXPECT_EQ(keys[static_cast<size_t>(i)], "/w/" + std::to_string(i));
  ASSERT_TRUE(etcd.restart(0)) << etcd.log();
  EXPECT_EQ(must(store->range("/w/")).kvs.size(), 40u);
}

// etcd itself killed -9 in the middle of a load of two-key transactions:
// after it restarts, every acknowledged transaction is there, and none is
// there in part.
TEST(EtcdStore, KillNineOfEtcdKeepsEveryAcknowledgedTransactionAndNoPartialOne) {
  EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.ready()) << etcd.log();
  for (int round = 0; round < 2; ++round) {
    auto store = connect(etcd, 2s);
    std::atomic<int> acked{-1};
    std::atomic<bool> failed{false};
    int base = round * 1'000'000;
    std::thread writer([&] {
      for (int i = base; i < base + 1'000'000; ++i) {
        std::string n = std::to_string(i);
        const Op ops[] = {Op::put("/a/" + n, std::string(64, 'a') + n),
                          Op::put("/b/" + n, std::string(64, 'b') + n)};
        if (!store->txn({}, ops, {})) break;
        acked.store(i);
      }
      failed.store(true);
    });
    int target = base + 100 + round * 150;
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (acked.load() < target && !failed.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_GE(acked.load(), target) << etcd.log();
    etcd.kill(0);
    writer.join();
    int last = acked.load();
    ASSERT_TRUE(etcd.restart(0)) << etcd.log();

    auto after = connect(etcd);
    std::set<std::string> a_ids, b_ids;
    for (auto& kv : must(after->range("/a/")).kvs) a_ids.insert(kv.key.substr(3));
    for (auto& kv : must(after->range("/b/")).kvs) b_ids.insert(kv.key.substr(3));
    EXPECT_EQ(a_ids, b_ids) << "a transaction was applied partially";
    for (int k = base; k <= last; ++k) {
      ASSERT_TRUE(a_ids.count(std::to_string(k))) << "acknowledged transaction " << k << " lost";
    }
  }
}

TEST(EtcdStore, ANewerOrForeignLayoutIsRefusedNamingTheKey) {
  EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.ready()) << etcd.log();
  auto first = connect(etcd);
  const std::string key(EtcdStore::kLayoutKey);
  must(first->put(key, "99"));
  auto newer = EtcdStore::open(must(EtcdStore::parse(etcd.endpoints())));
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().code(), Errc::InvalidArgument);
  EXPECT_NE(newer.error().message().find("newer Canopy"), std::string::npos)
      << newer.error().message();
  must(first->put(key, "{\"app\": \"someone else\"}"));
  auto foreign = EtcdStore::open(must(EtcdStore::parse(etcd.endpoints())));
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code(), Errc::InvalidArgument);
  EXPECT_NE(foreign.error().message().find(key), std::string::npos) << foreign.error().message();
}

}  // namespace
}  // namespace canopy::store
