#pragma once
// SnapshotCell<T>: one immutable T shared by readers on many threads and
// replaced whole by a writer (the agent's topology view, the server's per-host
// views). Readers take a shared_ptr<const T> and keep it for as long as they
// work on it (a datapath batch); the old snapshot is freed when its last reader
// lets go, which is the quiescent point.
//
//   SnapshotCell<Topology> cell(std::make_shared<const Topology>());
//   auto view = cell.load();          // reader: once per batch, not per packet
//   cell.store(std::move(next));      // writer
//
// Thread-safety: load() and store() may race freely. A short lock guards
// the pointer (libstdc++ 12's atomic<shared_ptr> hides its lock from
// ThreadSanitizer); readers take it once per batch, and the snapshot itself
// is read without one.

#include <memory>
#include <utility>

#include "base/mutex.h"

namespace canopy {

template <typename T>
class SnapshotCell {
 public:
  explicit SnapshotCell(std::shared_ptr<const T> initial) : ptr_(std::move(initial)) {}

  std::shared_ptr<const T> load() const {
    MutexLock lock(mu_);
    return ptr_;
  }
  void store(std::shared_ptr<const T> next) {
    MutexLock lock(mu_);
    ptr_.swap(next);  // `next` now holds the old snapshot, let go after the lock
  }

 private:
  mutable Mutex mu_;
  std::shared_ptr<const T> ptr_ CANOPY_GUARDED_BY(mu_);
};

}  // namespace canopy
