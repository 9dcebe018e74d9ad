// Races and crashes: compare-and-swap under contention, and kill -9 of a
// writer in the middle of its load.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstdio>
#include <set>
#include <thread>

#include "store_fixture.h"

namespace canopy::store {
namespace {

TEST_P(StoreTest, RacingCompareAndSwapHasExactlyOneWinnerEveryRound) {
  constexpr int kRounds = 300;
  must(store().put("/cas", "start"));
  std::barrier sync(2);
  std::atomic<Revision> expected{0};
  int wins[2] = {0, 0};
  int double_wins = 0;
  int no_wins = 0;
  bool won[2] = {false, false};

  auto writer = [&](int id) {
    for (int round = 0; round < kRounds; ++round) {
      sync.arrive_and_wait();  // both read the same expected revision
      const Compare c[] = {Compare::modRevisionIs("/cas", Compare::Op::Equal, expected.load())};
      const Op ops[] = {Op::put("/cas", "writer" + std::to_string(id))};
      auto r = store().txn(c, ops, {});
      won[id] = r && r->succeeded;
      if (won[id]) ++wins[id];
      sync.arrive_and_wait();  // both done
      if (id == 0) {
        if (won[0] && won[1]) ++double_wins;
        if (!won[0] && !won[1]) ++no_wins;
        expected.store(must(store().get("/cas"))->mod_revision);
      }
      sync.arrive_and_wait();  // next expected revision published
    }
  };
  expected.store(must(store().get("/cas"))->mod_revision);
  std::thread a(writer, 0);
  std::thread b(writer, 1);
  a.join();
  b.join();
  EXPECT_EQ(double_wins, 0);
  EXPECT_EQ(no_wins, 0);
  EXPECT_EQ(wins[0] + wins[1], kRounds);
  EXPECT_EQ(store().revision(), r(kRounds + 1));
}

TEST_P(StoreTest, CompareAndSwapIncrementsLoseNothing) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 150;
  must(store().put("/counter", "0"));
  std::atomic<int> retries{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        for (;;) {
          auto kv = *must(store().get("/counter"));
          const Compare c[] = {
              Compare::modRevisionIs("/counter", Compare::Op::Equal, kv.mod_revision)};
          const Op ops[] = {Op::put("/counter", std::to_string(std::stoi(kv.value) + 1))};
          if (must(store().txn(c, ops, {})).succeeded) break;
          retries.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  auto kv = *must(store().get("/counter"));
  EXPECT_EQ(kv.value, std::to_string(kThreads * kIncrements));
  EXPECT_EQ(kv.version, kThreads * kIncrements + 1);
}

// The child writes transaction i as two keys (/a/i and /b/i) in one
// transaction and reports i on the pipe only after txn() returned: an
// acknowledged transaction.
[[noreturn]] void writerProcess(const std::string& path, int ack_fd) {
  auto s = SqliteStore::open({.path = path});
  if (!s) ::_exit(2);
  for (int i = 0; i < 1'000'000; ++i) {
    std::string n = std::to_string(i);
    const Op ops[] = {Op::put("/a/" + n, std::string(64, 'a') + n),
                      Op::put("/b/" + n, std::string(64, 'b') + n)};
    auto r = (*s)->txn({}, ops, {});
    if (!r) ::_exit(3);
    if (::write(ack_fd, &i, sizeof(i)) != sizeof(i)) ::_exit(4);
  }
  ::_exit(0);
}

TEST(StoreCrash, KillNineMidLoadKeepsEveryAcknowledgedTransactionAndNoPartialOne) {
  canopy::testing::TempDir dir;
  std::string path = dir.file("canopy.db");
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      writerProcess(path, fds[1]);
    }
    ::close(fds[1]);
    // Let it run a varying while, then kill it without warning.
    int target_acks = 100 + attempt * 150;
    int last_ack = -1;
    int acks = 0;
    while (acks < target_acks) {
      int i = 0;
      ssize_t n = ::read(fds[0], &i, sizeof(i));
      ASSERT_EQ(n, static_cast<ssize_t>(sizeof(i))) << "writer died early";
      last_ack = i;
      ++acks;
    }
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    // Acks written after our last read still count as acknowledged.
    int i = 0;
    while (::read(fds[0], &i, sizeof(i)) == static_cast<ssize_t>(sizeof(i))) last_ack = i;
    ::close(fds[0]);

    auto s = must(SqliteStore::open({.path = path}));
    auto a = must(s->range("/a/"));
    auto b = must(s->range("/b/"));
    std::set<std::string> a_ids, b_ids;
    for (auto& kv : a.kvs) a_ids.insert(kv.key.substr(3));
    for (auto& kv : b.kvs) b_ids.insert(kv.key.substr(3));
    EXPECT_EQ(a_ids, b_ids) << "a transaction was applied partially";
    for (int k = 0; k <= last_ack; ++k) {
      ASSERT_TRUE(a_ids.count(std::to_string(k))) << "acknowledged transaction " << k << " lost";
    }
    // Every attempt rewrites the same keys; the revision counts every commit.
    EXPECT_GE(s->revision(), static_cast<Revision>(a_ids.size()));
    for (auto& kv : a.kvs) EXPECT_EQ(kv.value, std::string(64, 'a') + kv.key.substr(3));
  }
}

}  // namespace
}  // namespace canopy::store
