#include <gtest/gtest.h>

#include <thread>

#include "store_fixture.h"

namespace canopy::store {
namespace {

using namespace std::chrono_literals;

// Drains a watch until it has seen `count` events (or a generous deadline).
std::vector<Event> collect(Watch& w, size_t count) {
  std::vector<Event> out;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    auto batch = must(w.next(1s));
    out.insert(out.end(), batch.begin(), batch.end());
  }
  return out;
}

TEST_F(StoreTest, WatchDeliversEveryChangeInOrder) {
  must(store().put("/a", "1"));
  const Op two[] = {Op::put("/b", "2"), Op::put("/a", "3")};
  must(store().txn({}, two, {}));
  must(store().del("/b"));

  auto w = must(store().watch("/", 1));
  auto events = collect(*w, 4);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0], (Event{Event::Type::Put, {"/a", "1", 1, 1, 1}}));
  EXPECT_EQ(events[1], (Event{Event::Type::Put, {"/b", "2", 2, 2, 1}}));
  EXPECT_EQ(events[2], (Event{Event::Type::Put, {"/a", "3", 1, 2, 2}}));
  EXPECT_EQ(events[3], (Event{Event::Type::Delete, {"/b", "", 0, 3, 0}}));
  EXPECT_EQ(w->nextRevision(), 4);
  EXPECT_TRUE(must(w->next(1ms)).empty());
}

TEST_F(StoreTest, WatchFiltersByPrefix) {
  must(store().put("/net/1", "a"));
  must(store().put("/port/1", "b"));
  must(store().put("/net/2", "c"));
  auto w = must(store().watch("/net/", 1));
  auto events = collect(*w, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv.key, "/net/1");
  EXPECT_EQ(events[1].kv.key, "/net/2");
  EXPECT_TRUE(must(w->next(1ms)).empty());
}

TEST_F(StoreTest, WatchFromZeroStartsAfterNow) {
  must(store().put("/old", "x"));
  auto w = must(store().watch("", 0));
  EXPECT_EQ(w->nextRevision(), 2);
  must(store().put("/new", "y"));
  auto events = collect(*w, 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv.key, "/new");
}

TEST_F(StoreTest, BlockedWatchWakesOnCommitFromAnotherThread) {
  auto w = must(store().watch("/", 0));
  std::thread writer([&] {
    for (int i = 0; i < 50; ++i) must(store().put("/k" + std::to_string(i), "v"));
  });
  auto events = collect(*w, 50);
  writer.join();
  ASSERT_EQ(events.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(events[static_cast<size_t>(i)].kv.key, "/k" + std::to_string(i));
    EXPECT_EQ(events[static_cast<size_t>(i)].kv.mod_revision, i + 1);
  }
}

TEST_F(StoreTest, WatchNeverSplitsARevisionAcrossBatches) {
  // More revisions than one batch scans, each with three changes.
  for (int i = 0; i < 1500; ++i) {
    const Op ops[] = {Op::put("/x/a", std::to_string(i)), Op::put("/x/b", std::to_string(i)),
                      Op::put("/x/c", std::to_string(i))};
    must(store().txn({}, ops, {}));
  }
  auto w = must(store().watch("/x/", 1));
  size_t total = 0;
  Revision last = 0;
  while (total < 4500) {
    auto batch = must(w->next(1s));
    ASSERT_FALSE(batch.empty());
    ASSERT_EQ(batch.size() % 3, 0u) << "a revision was split";
    for (auto& e : batch) {
      EXPECT_GE(e.kv.mod_revision, last);
      last = e.kv.mod_revision;
    }
    total += batch.size();
  }
  EXPECT_EQ(total, 4500u);
  EXPECT_EQ(last, 1500);
}

TEST_F(StoreTest, WatchResumesFromARevisionAfterRestart) {
  for (int i = 1; i <= 5; ++i) must(store().put("/k", std::to_string(i)));
  Revision resume_at = 0;
  {
    auto w = must(store().watch("/", 1));
    auto first = collect(*w, 3);
    ASSERT_GE(first.size(), 3u);
    resume_at = first[2].kv.mod_revision + 1;  // consumed up to revision 3
  }
  reopen();  // the process "restarts": a new store object on the same file
  must(store().put("/k", "6"));
  auto w = must(store().watch("/", resume_at));
  auto rest = collect(*w, 3);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0].kv.value, "4");
  EXPECT_EQ(rest[1].kv.value, "5");
  EXPECT_EQ(rest[2].kv.value, "6");
  EXPECT_EQ(rest[2].kv.mod_revision, 6);
}

TEST_F(StoreTest, CompactionMakesOldWatchesFailClearly) {
  for (int i = 1; i <= 5; ++i) must(store().put("/k", std::to_string(i)));
  auto lagging = must(store().watch("/", 2));
  ASSERT_TRUE(store().compact(4));
  EXPECT_EQ(store().compactedRevision(), 4);

  auto old = store().watch("/", 3);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code(), Errc::Compacted);
  EXPECT_NE(old.error().message().find("compacted"), std::string::npos);

  auto lag = lagging->next(1s);
  ASSERT_FALSE(lag);
  EXPECT_EQ(lag.error().code(), Errc::Compacted);

  auto fresh = must(store().watch("/", 4));
  auto events = collect(*fresh, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv.value, "4");
  EXPECT_EQ(events[1].kv.value, "5");
  // Current values are untouched by compaction.
  EXPECT_EQ(must(store().get("/k"))->value, "5");
  EXPECT_EQ(must(store().get("/k"))->version, 5);
}

TEST_F(StoreTest, CompactionSurvivesRestartAndRejectsBadRevisions) {
  for (int i = 1; i <= 3; ++i) must(store().put("/k", std::to_string(i)));
  auto future = store().compact(10);
  ASSERT_FALSE(future);
  EXPECT_EQ(future.error().code(), Errc::InvalidArgument);
  ASSERT_TRUE(store().compact(3));
  auto again = store().compact(2);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Errc::Compacted);
  reopen();
  EXPECT_EQ(store().compactedRevision(), 3);
  auto w = store().watch("/", 1);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), Errc::Compacted);
}

TEST_F(StoreTest, CancelWakesABlockedWatch) {
  auto w = must(store().watch("/", 0));
  std::thread canceller([&] { w->cancel(); });
  auto r = w->next(30s);  // returns at cancel, not after 30 s
  canceller.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Unavailable);
}

TEST_F(StoreTest, WatchOutlivingItsStoreReportsUnavailable) {
  auto w = must(store().watch("/", 0));
  store_.reset();
  auto r = w->next(1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Unavailable);
}

}  // namespace
}  // namespace canopy::store
