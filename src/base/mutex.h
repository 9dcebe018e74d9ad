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

// Locks `mu` only when `shared`: for state that several threads share in
// some configurations (a host's datapath workers) and one thread owns in
// others (a single worker, where an uncontended lock per packet still costs
// a tenth of the cached path).
class CANOPY_SCOPED_CAPABILITY MaybeLock {
 public:
  MaybeLock(Mutex& mu, bool shared) CANOPY_ACQUIRE(mu) : mu_(shared ? &mu : nullptr) {
    if (mu_ != nullptr) mu_->lock();
  }
  ~MaybeLock() CANOPY_RELEASE() {
    if (mu_ != nullptr) mu_->unlock();
  }
  MaybeLock(const MaybeLock&) = delete;
  MaybeLock& operator=(const MaybeLock&) = delete;

 private:
  Mutex* mu_;
};

using CondVar = std::condition_variable_any;

}  // namespace canopy
