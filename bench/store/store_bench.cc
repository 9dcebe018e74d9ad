// Store throughput and watch latency, beside raw SQLite with the same
// durability (WAL, synchronous=FULL, one transaction per commit) as the
// denominator of the ratio: what Canopy's revisions, history and checks cost
// over the bare database. bench/store/run.sh prints the ratios.

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite_store.h"
#include "store/store.h"

namespace {

using canopy::store::Op;
using Clock = std::chrono::steady_clock;

// A fresh directory in the build tree's tmp (or $TMPDIR): on the same disk the
// store would use, not tmpfs, so fsync costs what it really costs.
class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("CANOPY_BENCH_DIR");
    std::string pattern = std::string(base != nullptr ? base : ".") + "/canopy-bench-XXXXXX";
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : ".";
  }
  ~BenchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

const std::string kValue(64, 'v');

std::string keyFor(int64_t i) { return "/bench/ports/" + std::to_string(i % 100000); }

void BM_StoreTxn(benchmark::State& state) {
  const auto batch = static_cast<int>(state.range(0));
  BenchDir dir;
  auto store = canopy::store::SqliteStore::open({.path = dir.file("canopy.db")});
  if (!store) {
    state.SkipWithError(store.error().message().c_str());
    return;
  }
  int64_t n = 0;
  std::vector<Op> ops;
  for (auto _ : state) {
    ops.clear();
    for (int i = 0; i < batch; ++i) ops.push_back(Op::put(keyFor(n++), kValue));
    auto r = (*store)->txn({}, ops, {});
    if (!r) state.SkipWithError(r.error().message().c_str());
  }
  state.counters["txn_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["keys_per_s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_StoreTxn)->Arg(1)->Arg(16)->Arg(256)->UseRealTime()->MinTime(0.5);

void BM_RawSqliteTxn(benchmark::State& state) {
  const auto batch = static_cast<int>(state.range(0));
  BenchDir dir;
  std::string path = dir.file("raw.db");
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    state.SkipWithError("open failed");
    return;
  }
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
               "CREATE TABLE kv(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;",
               nullptr, nullptr, nullptr);
  sqlite3_stmt *begin = nullptr, *commit = nullptr, *insert = nullptr;
  sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, nullptr);
  sqlite3_prepare_v2(db, "COMMIT", -1, &commit, nullptr);
  sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv(key, value) VALUES (?1, ?2)", -1, &insert,
                     nullptr);
  int64_t n = 0;
  for (auto _ : state) {
    sqlite3_step(begin);
    sqlite3_reset(begin);
    for (int i = 0; i < batch; ++i) {
      std::string key = keyFor(n++);
      sqlite3_bind_blob(insert, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
      sqlite3_bind_blob(insert, 2, kValue.data(), static_cast<int>(kValue.size()), SQLITE_STATIC);
      sqlite3_step(insert);
      sqlite3_reset(insert);
    }
    if (sqlite3_step(commit) != SQLITE_DONE) state.SkipWithError("commit failed");
    sqlite3_reset(commit);
  }
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_finalize(insert);
  sqlite3_close(db);
  state.counters["txn_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["keys_per_s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RawSqliteTxn)->Arg(1)->Arg(16)->Arg(256)->UseRealTime()->MinTime(0.5);

// Time from calling txn() to a watcher on another thread holding the event,
// and (for comparison) from calling txn() to its return. Reported as medians.
void BM_WatchDelivery(benchmark::State& state) {
  BenchDir dir;
  auto opened = canopy::store::SqliteStore::open({.path = dir.file("canopy.db")});
  if (!opened) {
    state.SkipWithError(opened.error().message().c_str());
    return;
  }
  auto& store = **opened;
  auto watch = store.watch("/bench/", 0);
  if (!watch) {
    state.SkipWithError(watch.error().message().c_str());
    return;
  }
  std::atomic<int64_t> received{0};
  std::atomic<bool> stop{false};
  std::vector<Clock::time_point> recv_at;
  recv_at.reserve(1 << 20);
  std::thread watcher([&] {
    while (!stop.load()) {
      auto events = (*watch)->next(std::chrono::milliseconds(50));
      if (!events) break;
      for (size_t i = 0; i < events->size(); ++i) recv_at.push_back(Clock::now());
      received.fetch_add(static_cast<int64_t>(events->size()), std::memory_order_release);
    }
  });
  std::vector<double> commit_us, delivery_us;
  int64_t n = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto r = store.put(keyFor(n), kValue);
    auto t1 = Clock::now();
    ++n;
    if (!r) state.SkipWithError(r.error().message().c_str());
    while (received.load(std::memory_order_acquire) < n) {
    }
    auto t2 = recv_at[static_cast<size_t>(n - 1)];
    commit_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    delivery_us.push_back(std::chrono::duration<double, std::micro>(t2 - t0).count());
  }
  stop.store(true);
  (*watch)->cancel();
  watcher.join();
  auto median = [](std::vector<double>& v) {
    if (v.empty()) return 0.0;
    std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  state.counters["commit_p50_us"] = median(commit_us);
  state.counters["watch_p50_us"] = median(delivery_us);
}
BENCHMARK(BM_WatchDelivery)->UseRealTime()->MinTime(0.5);

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
