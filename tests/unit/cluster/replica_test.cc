// Replicas on a real etcd (and the embedded store): one leader at a time,
// the lead moves when the leader goes, a stale leader's fenced write fails,
// an id is one replica's, the registry lists the live ones.

#include "cluster/replica.h"

#include <gtest/gtest.h>

#include <thread>

#include "store/store.h"
#include "testing/etcd_cluster.h"
#include "testing/temp_dir.h"

namespace canopy::cluster {
namespace {

using namespace std::chrono_literals;

template <typename Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout = 15s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

std::unique_ptr<store::Store> openStore(const std::string& url) {
  auto s = store::open(url);
  EXPECT_TRUE(s) << (s ? "" : s.error().toString());
  return s ? std::move(*s) : nullptr;
}

std::unique_ptr<Replica> startReplica(store::Store& store, const std::string& id) {
  auto r = Replica::start(store, {.id = id, .api = "http://" + id, .southbound = "", .ttl = 2s});
  EXPECT_TRUE(r) << (r ? "" : r.error().toString());
  return r ? std::move(*r) : nullptr;
}

TEST(Replica, AloneOnTheEmbeddedStoreItLeadsAtOnce) {
  canopy::testing::TempDir dir;
  auto store = openStore("sqlite:" + dir.file("c.db"));
  auto r = startReplica(*store, "only");
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->leading());
  EXPECT_EQ(r->leader(), "only");
  auto fence = r->fence();
  ASSERT_TRUE(fence);
  const store::Compare holds[] = {*fence};
  EXPECT_TRUE(store->txn(holds, {}, {})->succeeded);
}

TEST(Replica, OneLeadsAndTheLeadMovesWhenItGoes) {
  canopy::testing::EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.ready()) << etcd.log();
  auto s1 = openStore(etcd.url());
  auto s2 = openStore(etcd.url());
  auto a = startReplica(*s1, "a");
  auto b = startReplica(*s2, "b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(a->leading());
  EXPECT_FALSE(b->leading());
  ASSERT_TRUE(waitFor([&] { return b->leader() == "a"; }));
  auto listed = b->replicas();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_TRUE((*listed)[0].leader);
  EXPECT_EQ((*listed)[1].api, "http://b");

  // a's fence holds now, and fails once b leads: a write a makes after it
  // lost the lead cannot land.
  auto fence = a->fence();
  ASSERT_TRUE(fence);
  const store::Compare held[] = {*fence};
  EXPECT_TRUE(s1->txn(held, {}, {})->succeeded);
  a->stop();  // revokes its lease: no waiting for the TTL
  ASSERT_TRUE(waitFor([&] { return b->leading(); }, 5s));
  const store::Op write[] = {store::Op::put("/fenced", "stale")};
  auto stale = s1->txn(held, write, {});
  ASSERT_TRUE(stale);
  EXPECT_FALSE(stale->succeeded);
  EXPECT_FALSE(s1->get("/fenced")->has_value());
  ASSERT_TRUE(waitFor([&] { return b->replicas()->size() == 1; }));
}

TEST(Replica, AnIdIsOneLiveReplicas) {
  canopy::testing::EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.ready()) << etcd.log();
  auto s1 = openStore(etcd.url());
  auto s2 = openStore(etcd.url());
  auto first = startReplica(*s1, "same");
  ASSERT_NE(first, nullptr);
  auto second = Replica::start(*s2, {.id = "same", .api = "", .southbound = "", .ttl = 2s});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), Errc::Conflict);
  EXPECT_NE(second.error().message().find("--replica-id"), std::string::npos);
  auto bad = Replica::start(*s2, {.id = "a/b", .api = "", .southbound = "", .ttl = 2s});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::InvalidArgument);
}

}  // namespace
}  // namespace canopy::cluster
