#pragma once
// SnapshotCell<T>: one immutable T shared by readers on many threads and
// replaced whole by a writer (the agent's topology view, the server's per-host
// views). Readers take a shared_ptr<const T> and keep it for as long as they
// work on it (a datapath batch); the old snapshot is freed when its last reader
// lets go, which is the quiescent point.
//
//   SnapshotCell<Topology> cell(std::make_shared<const Topology>());
//   auto view = cell.load();          // reader: lock-free on the fast path in practice
//   cell.store(std::move(next));      // writer
//
// Thread-safety: load() and store() may race freely.

#include <atomic>
#include <memory>
#include <utility>

namespace canopy {

template <typename T>
class SnapshotCell {
 public:
  explicit SnapshotCell(std::shared_ptr<const T> initial) : ptr_(std::move(initial)) {}

  std::shared_ptr<const T> load() const noexcept { return ptr_.load(std::memory_order_acquire); }
  void store(std::shared_ptr<const T> next) noexcept {
    ptr_.store(std::move(next), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const T>> ptr_;
};

}  // namespace canopy
