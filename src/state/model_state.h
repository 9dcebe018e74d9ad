#pragma once
// The server's whole logical model in memory, fed by the store's watch: every
// resource document by collection and id, with the store revision that last
// wrote it (tables.h). Reads are served from here; every write is a
// Transaction (transaction.h) that write() builds from a fresh read and
// commits with its compares (optimistic concurrency on each document's mod
// revision and on uniqueness keys), retrying when another writer got there
// first; it returns once the watch has applied the change, so a writer reads
// its own writes.
//
//   ModelState state(store);
//   if (auto r = state.start(); !r) ...;
//   state.read([](const Tables& t) { ... });
//   auto rev = state.write({}, [&](Transaction& txn) -> Result<void> { ... });
//
// Store layout: /canopy/v1/<collection>/<id> -> the resource's JSON document;
// /canopy/v1/claims/<what>/... -> uniqueness claims (an IP, a MAC), not loaded.
// Other writers of the same store (another server) are seen through the same
// watch, so nothing here assumes a single writer.
//
// Thread-safety: read() and write() from any thread; readers share a lock,
// the watch thread takes it exclusively to apply a batch. Writers of one
// ModelState take turns (the store commits one transaction at a time
// anyway), so conflicts, and retries, come only from other processes.

#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "model/json.h"
#include "state/tables.h"
#include "state/transaction.h"
#include "store/store.h"

namespace canopy::state {

// One document's change, as applied from the watch: its content before and
// after (absent: it did not exist). A change with an empty collection means
// the whole model was reloaded (after compaction): everything may differ.
struct Change {
  std::string collection;
  std::string id;
  std::optional<Json> before;
  std::optional<Json> after;
};

class ModelState {
 public:
  explicit ModelState(store::Store& store, std::vector<IndexSpec> indexes = defaultIndexes())
      : store_(store),
        index_specs_(std::make_shared<const std::vector<IndexSpec>>(std::move(indexes))),
        tables_(index_specs_) {}
  ~ModelState();
  ModelState(const ModelState&) = delete;
  ModelState& operator=(const ModelState&) = delete;

  // Whether a stored document may enter the model: what the store holds
  // that Canopy did not write (another application, a newer or damaged
  // version) is logged with its key and left out, so nothing above sees it.
  // The default takes any JSON object.
  using DocumentCheck =
      std::function<Result<void>(std::string_view collection, std::string_view id, const Json&)>;
  void setDocumentCheck(DocumentCheck check) { check_ = std::move(check); }  // before start()

  // Loads everything under kPrefix and starts following the watch.
  Result<void> start();
  void stop();

  template <typename F>
  auto read(F&& f) const {
    std::shared_lock lock(mu_);
    return f(static_cast<const Tables&>(tables_));
  }

  // Like read(), with the revision the tables reflect: f(tables, revision).
  template <typename F>
  auto readAt(F&& f) const {
    std::shared_lock lock(mu_);
    return f(static_cast<const Tables&>(tables_), applied_);
  }

  // Builds a transaction with `build` over the model as it is now and
  // commits it; when another writer moved what it compares, starts over from
  // a fresh read, up to `options.attempts` times (then Conflict). An error
  // from `build` is returned as it is, with nothing written. Returns the
  // revision committed (the current one when the transaction was empty),
  // once the model reflects it.
  using Build = std::function<Result<void>(Transaction&)>;
  Result<store::Revision> write(const WriteOptions& options, const Build& build);

  // The revision the in-memory model reflects.
  store::Revision appliedRevision() const;

  // Calls `observer` on the watch thread after each applied batch, with the
  // batch's changes and the tables as they are now (read-only, under the
  // model's lock: it must be quick and must not call read() or commit()).
  using Observer = std::function<void(const std::vector<Change>&, const Tables&)>;
  void observe(Observer observer);

  // Waits until the model moves past `seen` (or `timeout` passes, or stop());
  // the revision it reflects then.
  store::Revision waitPast(store::Revision seen, std::chrono::milliseconds timeout);

 private:
  // Runs the transaction; Conflict if the compares fail. Waits until the
  // watch has applied the revision.
  Result<store::Revision> commit(std::span<const store::Compare> compares,
                                 std::span<const store::Op> ops);
  void follow();
  void apply(const std::vector<store::Event>& events, store::Revision upto);
  Result<void> reload();

  // The document of `key` if it may enter the model; logs why not.
  std::optional<Json> admit(const store::KeyValue& kv, std::string_view collection,
                            std::string_view id) const;

  store::Store& store_;
  DocumentCheck check_;
  const std::shared_ptr<const std::vector<IndexSpec>> index_specs_;
  mutable std::shared_mutex mu_;
  Tables tables_;
  store::Revision applied_ = 0;      // guarded by mu_
  std::vector<Observer> observers_;  // guarded by mu_

  Mutex write_mu_;  // writers take turns
  Mutex wait_mu_;
  CondVar applied_cv_;
  std::unique_ptr<store::Watch> watch_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace canopy::state
