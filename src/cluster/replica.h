#pragma once
// One canopy-server replica's place in the cluster of replicas that share a
// store: its lease, its entry in the registry of replicas, and the election
// of the one leader that does the work that must happen once (key
// assignment, gateway scheduling, agents' liveness, Nova's events,
// compaction).
//
// Store layout (outside the model's prefix; every key held by the replica's
// lease, so it goes when the replica dies and its lease ends):
//   /canopy/cluster/replicas/<id> -> {"id", "api", "southbound", "started"}
//   /canopy/cluster/leader        -> <id of the leader>
//
//   auto replica = Replica::start(store, {.id = "r1", .api = "http://10.0.0.1:9696"});
//   if ((*replica)->leading()) reconcile(...);
//   txn.require(*(*replica)->fence());   // a stale leader's write fails
//
// A replica renews its lease every ttl/4; a replica that dies (kill -9) loses
// its lease after `ttl`, and another replica then wins the election within
// ttl/4. A replica that could not renew in time (paused, cut from etcd) stops
// leading at once, gets a new lease when the store answers again, and tells
// its listeners so they put their leased keys again. On the embedded store
// there is one process: it leads from its first tick.
//
// Thread-safety: all methods from any thread. Listeners run on the replica's
// thread; they must not call stop().

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "store/store.h"

namespace canopy::cluster {

inline constexpr std::string_view kReplicasPrefix = "/canopy/cluster/replicas/";
inline constexpr std::string_view kLeaderKey = "/canopy/cluster/leader";

struct ReplicaInfo {
  std::string id;
  std::string api;         // http://HOST:PORT where its API answers
  std::string southbound;  // where its agents connect
  std::string started;     // Neutron's timestamp format
  bool leader = false;
};

class Replica {
 public:
  struct Options {
    std::string id;  // unique in the cluster
    std::string api;
    std::string southbound;
    std::chrono::seconds ttl{5};
  };

  static Result<std::unique_ptr<Replica>> start(store::Store& store, Options options);
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Stops renewing and revokes the lease: leadership and every leased key go
  // at once (a clean shutdown hands over without waiting for the TTL).
  void stop();

  const std::string& id() const { return options_.id; }
  store::LeaseId lease() const { return lease_.load(); }
  bool leading() const { return leading_.load(); }
  // Holds only while this replica still leads in the term it was elected in:
  // added to the leader's writes, it makes those of a replica that lost the
  // lead without knowing it yet fail.
  std::optional<store::Compare> fence() const;
  // The leader as last seen ("" when none).
  std::string leader() const;

  // Says where this replica's API answers (known only once it listens).
  Result<void> advertise(std::string api);

  // Every live replica, from the registry.
  Result<std::vector<ReplicaInfo>> replicas() const;

  // Called with true when this replica starts leading and false when it stops.
  void onLeadership(std::function<void(bool)> listener);
  // Called with the new lease after the old one was lost.
  void onNewLease(std::function<void(store::LeaseId)> listener);

 private:
  Replica(store::Store& store, Options options) : store_(store), options_(std::move(options)) {}
  Result<void> register_();
  std::string entry() const;  // the registry's document
  void run();
  void tick();
  void campaign();
  void setLeading(bool leading, store::Revision term);

  store::Store& store_;
  const Options options_;
  std::atomic<store::LeaseId> lease_{0};
  std::atomic<bool> leading_{false};
  std::chrono::steady_clock::time_point renewed_;  // the run thread's

  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ CANOPY_GUARDED_BY(mu_) = false;
  store::Revision term_ CANOPY_GUARDED_BY(mu_) = 0;  // the leader key's create revision
  std::string leader_ CANOPY_GUARDED_BY(mu_);
  std::string api_ CANOPY_GUARDED_BY(mu_);
  std::string started_ CANOPY_GUARDED_BY(mu_);
  std::vector<std::function<void(bool)>> leadership_listeners_ CANOPY_GUARDED_BY(mu_);
  std::vector<std::function<void(store::LeaseId)>> lease_listeners_ CANOPY_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace canopy::cluster
