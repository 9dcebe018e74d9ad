// Leases on both backends: keys put with a lease go, in one revision, when
// the lease is revoked or ends; a lease dies with the process that kept it
// alive (the embedded store ends them on open; etcd after their TTL).

#include <gtest/gtest.h>

#include <thread>

#include "store_fixture.h"

namespace canopy::store {
namespace {

using namespace std::chrono_literals;

TEST_P(StoreTest, RevokingALeaseDeletesItsKeysInOneRevision) {
  LeaseId lease = must(store().grantLease(10s));
  ASSERT_NE(lease, 0);
  const Op ops[] = {Op::put("/live/a", "1", lease), Op::put("/live/b", "2", lease),
                    Op::put("/keep", "3")};
  must(store().txn({}, ops, {}));
  auto w = must(store().watch("/", 0));
  ASSERT_TRUE(store().keepAlive(lease));
  ASSERT_TRUE(store().revokeLease(lease));
  EXPECT_TRUE(must(store().range("/live/")).kvs.empty());
  EXPECT_TRUE(must(store().get("/keep")).has_value());
  std::vector<Event> events;
  while (events.size() < 2) {
    auto batch = must(w->next(5s));
    ASSERT_FALSE(batch.empty());
    events.insert(events.end(), batch.begin(), batch.end());
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, Event::Type::Delete);
  EXPECT_EQ(events[1].type, Event::Type::Delete);
  EXPECT_EQ(events[0].kv.mod_revision, events[1].kv.mod_revision);
  EXPECT_EQ(events[0].kv.mod_revision, r(2));
  // An ended lease can be neither renewed nor used; revoking it again is fine.
  auto renew = store().keepAlive(lease);
  ASSERT_FALSE(renew);
  EXPECT_EQ(renew.error().code(), Errc::NotFound);
  const Op late[] = {Op::put("/live/c", "x", lease)};
  auto put = store().txn({}, late, {});
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().code(), Errc::NotFound);
  EXPECT_TRUE(store().revokeLease(lease));
}

TEST_P(StoreTest, APutWithoutTheLeaseDetachesTheKey) {
  LeaseId lease = must(store().grantLease(10s));
  must(store().txn({}, std::vector<Op>{Op::put("/k", "leased", lease)}, {}));
  must(store().put("/k", "plain"));
  ASSERT_TRUE(store().revokeLease(lease));
  EXPECT_EQ(must(store().get("/k"))->value, "plain");
}

TEST_P(StoreTest, ALeaseDiesWithTheProcessThatKeptItAlive) {
  LeaseId lease = must(store().grantLease(2s));
  must(store().txn({}, std::vector<Op>{Op::put("/presence/me", "here", lease)}, {}));
  reopen();  // the process is gone: nobody keeps the lease alive
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (must(store().get("/presence/me")).has_value() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_FALSE(must(store().get("/presence/me")).has_value());
}

TEST_P(StoreTest, AKeptAliveLeaseOutlivesItsTtl) {
  LeaseId lease = must(store().grantLease(2s));
  must(store().txn({}, std::vector<Op>{Op::put("/presence/me", "here", lease)}, {}));
  // Renewed every 500 ms for 4 s: twice its TTL.
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(store().keepAlive(lease));
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_TRUE(must(store().get("/presence/me")).has_value());
}

}  // namespace
}  // namespace canopy::store
