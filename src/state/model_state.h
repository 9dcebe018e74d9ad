#pragma once
// The server's whole logical model in memory, fed by the store's watch: every
// resource document by collection and id, with the store revision that last
// wrote it. Reads are served from here; writes go to the store as
// transactions (optimistic concurrency on each document's mod revision and on
// uniqueness keys), and commit() returns once the watch has applied the
// change, so a client reads its own writes.
//
//   ModelState state(store);
//   if (auto r = state.start(); !r) ...;
//   state.read([](const Tables& t) { ... });
//   auto rev = state.commit(compares, ops);     // Conflict if a compare failed
//
// Store layout: /canopy/v1/<collection>/<id> -> the resource's JSON document.
// Other writers of the same store (another server, later) are seen through
// the same watch, so nothing here assumes a single writer.
//
// Thread-safety: read() and commit() from any thread; readers share a lock,
// the watch thread takes it exclusively to apply a batch.

#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>

#include "base/mutex.h"
#include "model/json.h"
#include "store/store.h"

namespace canopy::state {

using model::Json;

struct Document {
  Json doc;
  store::Revision mod_revision = 0;
};

// collection -> id -> document
using Collection = std::map<std::string, Document, std::less<>>;
using Tables = std::map<std::string, Collection, std::less<>>;

inline constexpr std::string_view kPrefix = "/canopy/v1/";

std::string documentKey(std::string_view collection, std::string_view id);

class ModelState {
 public:
  explicit ModelState(store::Store& store) : store_(store) {}
  ~ModelState();
  ModelState(const ModelState&) = delete;
  ModelState& operator=(const ModelState&) = delete;

  // Loads everything under kPrefix and starts following the watch.
  Result<void> start();
  void stop();

  template <typename F>
  auto read(F&& f) const {
    std::shared_lock lock(mu_);
    return f(static_cast<const Tables&>(tables_));
  }

  // Runs the transaction; if the compares fail, Conflict (the caller
  // re-reads and retries). Waits until the watch has applied the revision.
  Result<store::Revision> commit(std::span<const store::Compare> compares,
                                 std::span<const store::Op> ops);

  // The revision the in-memory model reflects.
  store::Revision appliedRevision() const;

 private:
  void follow();
  void apply(const std::vector<store::Event>& events);
  Result<void> reload();

  store::Store& store_;
  mutable std::shared_mutex mu_;
  Tables tables_;
  store::Revision applied_ = 0;  // guarded by mu_

  Mutex wait_mu_;
  CondVar applied_cv_;
  std::unique_ptr<store::Watch> watch_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace canopy::state
