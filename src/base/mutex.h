#pragma once
// A std::mutex that clang's -Wthread-safety understands, the lock guard for it,
// and the CANOPY_GUARDED_BY family of annotations (no-ops under g++).
//
//   class Table {
//     Mutex mu_;
//     std::map<Key, Value> rows_ CANOPY_GUARDED_BY(mu_);
//     void put(Key k, Value v) { MutexLock lock(mu_); rows_[k] = v; }
//   };
//
// CondVar waits on a Mutex directly: `cv_.wait(mu_, [&] { return ready_; })`
// while a MutexLock holds it.

#include <atomic>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define CANOPY_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define CANOPY_THREAD_ANNOTATION(x)
#endif

#define CANOPY_CAPABILITY(x) CANOPY_THREAD_ANNOTATION(capability(x))
#define CANOPY_SCOPED_CAPABILITY CANOPY_THREAD_ANNOTATION(scoped_lockable)
#define CANOPY_GUARDED_BY(x) CANOPY_THREAD_ANNOTATION(guarded_by(x))
#define CANOPY_PT_GUARDED_BY(x) CANOPY_THREAD_ANNOTATION(pt_guarded_by(x))
#define CANOPY_REQUIRES(...) CANOPY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define CANOPY_EXCLUDES(...) CANOPY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define CANOPY_ACQUIRE(...) CANOPY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define CANOPY_RELEASE(...) CANOPY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define CANOPY_NO_THREAD_SAFETY_ANALYSIS CANOPY_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace canopy {

class CANOPY_CAPABILITY("mutex") Mutex {
 public:
  void lock() CANOPY_ACQUIRE() { mu_.lock(); }
  void unlock() CANOPY_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class CANOPY_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) CANOPY_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() CANOPY_RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// A lock held for a few dozen instructions, one byte wide so that it sits
// in the line of the data it guards (a connection's state): taking it moves
// only that line, which only the threads working on that data touch.
class CANOPY_CAPABILITY("mutex") SpinLock {
 public:
  void lock() noexcept CANOPY_ACQUIRE() {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
    }
  }
  void unlock() noexcept CANOPY_RELEASE() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// Locks `mu` only when `shared`: for state that several threads share in
// some configurations (a host's datapath workers) and one thread owns in
// others (a single worker, where an uncontended lock per packet still costs
// a tenth of the cached path).
template <typename Lockable>
class CANOPY_SCOPED_CAPABILITY MaybeLock {
 public:
  MaybeLock(Lockable& mu, bool shared) CANOPY_ACQUIRE(mu) : mu_(shared ? &mu : nullptr) {
    if (mu_ != nullptr) mu_->lock();
  }
  ~MaybeLock() CANOPY_RELEASE() {
    if (mu_ != nullptr) mu_->unlock();
  }
  MaybeLock(const MaybeLock&) = delete;
  MaybeLock& operator=(const MaybeLock&) = delete;

 private:
  Lockable* mu_;
};

using CondVar = std::condition_variable_any;

}  // namespace canopy
