#pragma once
// Named event counters for the control plane and for what the agent exports
// (status, Prometheus text). The datapath keeps its own per-worker arrays
// indexed by enum and folds them in; this is the named, shared layer.
//
//   Counters counters;
//   Counter& commits = counters.get("store_txn_committed");  // look up once
//   commits.add();                                           // hot path: one relaxed add
//   for (auto& [name, value] : counters.snapshot()) ...
//
// Thread-safety: get() and snapshot() lock; a Counter is bumped lock-free from
// any thread. References returned by get() stay valid for the Counters' life.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/mutex.h"

namespace canopy {

class Counter {
 public:
  void add(uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Counters {
 public:
  // The counter of that name, created at zero on first use.
  Counter& get(std::string_view name) CANOPY_EXCLUDES(mu_);
  // Every counter's name and value, sorted by name.
  std::vector<std::pair<std::string, uint64_t>> snapshot() const CANOPY_EXCLUDES(mu_);

 private:
  mutable Mutex mu_;
  std::map<std::string, std::unique_ptr<Counter>, std::less<>> counters_ CANOPY_GUARDED_BY(mu_);
};

}  // namespace canopy
