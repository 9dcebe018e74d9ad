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

TEST_P(StoreTest, WatchDeliversEveryChangeInOrder) {
  must(store().put("/a", "1"));
  const Op two[] = {Op::put("/b", "2"), Op::put("/a", "3")};
  must(store().txn({}, two, {}));
  must(store().del("/b"));

  auto w = must(store().watch("/", r(1)));
  auto events = collect(*w, 4);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0], (Event{Event::Type::Put, {"/a", "1", r(1), r(1), 1}}));
  EXPECT_EQ(events[1], (Event{Event::Type::Put, {"/b", "2", r(2), r(2), 1}}));
  EXPECT_EQ(events[2], (Event{Event::Type::Put, {"/a", "3", r(1), r(2), 2}}));
  EXPECT_EQ(events[3], (Event{Event::Type::Delete, {"/b", "", 0, r(3), 0}}));
  EXPECT_EQ(w->nextRevision(), r(4));
  EXPECT_TRUE(must(w->next(1ms)).empty());
}

TEST_P(StoreTest, WatchFiltersByPrefix) {
  must(store().put("/net/1", "a"));
  must(store().put("/port/1", "b"));
  must(store().put("/net/2", "c"));
  auto w = must(store().watch("/net/", r(1)));
  auto events = collect(*w, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv.key, "/net/1");
  EXPECT_EQ(events[1].kv.key, "/net/2");
  EXPECT_TRUE(must(w->next(1ms)).empty());
}

TEST_P(StoreTest, WatchFromZeroStartsAfterNow) {
  must(store().put("/old", "x"));
  auto w = must(store().watch("", 0));
  EXPECT_EQ(w->nextRevision(), r(2));
  must(store().put("/new", "y"));
  auto events = collect(*w, 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv.key, "/new");
}

TEST_P(StoreTest, BlockedWatchWakesOnCommitFromAnotherThread) {
  auto w = must(store().watch("/", 0));
  std::thread writer([&] {
    for (int i = 0; i < 50; ++i) must(store().put("/k" + std::to_string(i), "v"));
  });
  auto events = collect(*w, 50);
  writer.join();
  ASSERT_EQ(events.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(events[static_cast<size_t>(i)].kv.key, "/k" + std::to_string(i));
    EXPECT_EQ(events[static_cast<size_t>(i)].kv.mod_revision, r(i + 1));
  }
}

TEST_P(StoreTest, WatchNeverSplitsARevisionAcrossBatches) {
  // More revisions than one batch scans, each with three changes.
  for (int i = 0; i < 1500; ++i) {
    const Op ops[] = {Op::put("/x/a", std::to_string(i)), Op::put("/x/b", std::to_string(i)),
                      Op::put("/x/c", std::to_string(i))};
    must(store().txn({}, ops, {}));
  }
  auto w = must(store().watch("/x/", r(1)));
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
  EXPECT_EQ(last, r(1500));
}

TEST_P(StoreTest, WatchResumesFromARevisionAfterRestart) {
  for (int i = 1; i <= 5; ++i) must(store().put("/k", std::to_string(i)));
  Revision resume_at = 0;
  {
    auto w = must(store().watch("/", r(1)));
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
  EXPECT_EQ(rest[2].kv.mod_revision, r(6));
}

TEST_P(StoreTest, CompactionMakesOldWatchesFailClearly) {
  for (int i = 1; i <= 5; ++i) must(store().put("/k", std::to_string(i)));
  auto lagging = must(store().watch("/", r(2)));
  ASSERT_TRUE(store().compact(r(4)));
  EXPECT_EQ(store().compactedRevision(), r(4));

  auto old = store().watch("/", r(3));
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code(), Errc::Compacted);
  EXPECT_NE(old.error().message().find("compacted"), std::string::npos);

  // The embedded store reads history as the watcher asks: gone. etcd sends
  // a new watcher its history in the background: gone too, unless it was
  // sent before the compaction, and then every event of it, in order.
  std::vector<std::string> values;
  for (;;) {
    auto lag = lagging->next(2s);
    if (!lag) {
      EXPECT_EQ(lag.error().code(), Errc::Compacted);
      EXPECT_TRUE(values.empty() || !etcd());
      break;
    }
    ASSERT_TRUE(etcd()) << "the embedded store delivered compacted history";
    for (auto& e : *lag) values.push_back(e.kv.value);
    if (values.size() >= 4 || lag->empty()) {
      EXPECT_EQ(values, (std::vector<std::string>{"2", "3", "4", "5"}));
      break;
    }
  }

  auto fresh = must(store().watch("/", r(4)));
  auto events = collect(*fresh, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv.value, "4");
  EXPECT_EQ(events[1].kv.value, "5");
  // Current values are untouched by compaction.
  EXPECT_EQ(must(store().get("/k"))->value, "5");
  EXPECT_EQ(must(store().get("/k"))->version, 5);
}

TEST_P(StoreTest, CompactionSurvivesRestartAndRejectsBadRevisions) {
  for (int i = 1; i <= 3; ++i) must(store().put("/k", std::to_string(i)));
  auto future = store().compact(r(10));
  ASSERT_FALSE(future);
  EXPECT_EQ(future.error().code(), Errc::InvalidArgument);
  ASSERT_TRUE(store().compact(r(3)));
  auto again = store().compact(r(2));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Errc::Compacted);
  reopen();
  EXPECT_EQ(store().compactedRevision(), r(3));
  auto w = store().watch("/", r(1));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), Errc::Compacted);
}

TEST_P(StoreTest, CancelWakesABlockedWatch) {
  auto w = must(store().watch("/", 0));
  std::thread canceller([&] { w->cancel(); });
  auto r = w->next(30s);  // returns at cancel, not after 30 s
  canceller.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Unavailable);
}

TEST_P(StoreTest, WatchOutlivingItsStoreReportsUnavailable) {
  auto w = must(store().watch("/", 0));
  store_.reset();
  auto r = w->next(1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Unavailable);
}

}  // namespace
}  // namespace canopy::store
