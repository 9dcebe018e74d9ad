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
// Store layout: /canopy/v1/<collection>/<id> -> the resource's JSON document;
// /canopy/v1/claims/<what>/... -> uniqueness claims (an IP, a MAC), not loaded.
// Other writers of the same store (another server, later) are seen through
// the same watch, so nothing here assumes a single writer.
//
// Thread-safety: read() and commit() from any thread; readers share a lock,
// the watch thread takes it exclusively to apply a batch.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "model/json.h"
#include "store/store.h"

namespace canopy::state {

using model::Json;

struct IndexSpec;
std::vector<IndexSpec> defaultIndexes();

// What readers derive from one version of a document and keep beside it (the
// API's serialised views), so that it is computed once per version. A new
// version of the document starts with an empty memo.
struct DocumentMemo {
  std::mutex mu;
  std::string text[2];  // by slot, e.g. [is_admin]
  bool ready[2] = {false, false};
};

struct Document {
  Json doc;
  store::Revision mod_revision = 0;
  std::shared_ptr<DocumentMemo> memo = std::make_shared<DocumentMemo>();
};

// id -> document
using Collection = std::map<std::string, Document, std::less<>>;

// A secondary index: every document of `collection` is filed under each key
// that `keys` returns for it ("ports by network", "addresses in use").
struct IndexSpec {
  std::string name;
  std::string collection;
  std::function<std::vector<std::string>(const Json&)> keys;
};

// collection -> id -> document, plus the declared indexes, kept in step.
class Tables : public std::map<std::string, Collection, std::less<>> {
 public:
  // The ids filed under `key` in index `index` (empty if none).
  const std::set<std::string, std::less<>>& lookup(std::string_view index,
                                                   std::string_view key) const;

 private:
  friend class ModelState;
  void put(const std::vector<IndexSpec>& specs, std::string_view collection, std::string_view id,
           Document doc);
  void erase(const std::vector<IndexSpec>& specs, std::string_view collection, std::string_view id);

  // index name -> key -> ids
  std::map<std::string, std::map<std::string, std::set<std::string, std::less<>>, std::less<>>,
           std::less<>>
      indexes_;
};

inline constexpr std::string_view kPrefix = "/canopy/v1/";

// One document's change, as applied from the watch: its content before and
// after (absent: it did not exist). A change with an empty collection means
// the whole model was reloaded (after compaction): everything may differ.
struct Change {
  std::string collection;
  std::string id;
  std::optional<Json> before;
  std::optional<Json> after;
};

// The indexes the API and IPAM rely on:
//   subnets.network  subnet  -> its network_id
//   ports.network    port    -> its network_id
//   ports.router_network  a router's port -> its network_id
//   ports.device     port    -> its device_id
//   ports.host       port    -> its binding:host_id
//   ports.subnet     port    -> each subnet_id of its fixed_ips
//   ports.address    port    -> "<network_id> <ip>" for each fixed IP
//   ports.mac        port    -> "<network_id> <mac>"
//   ports.security_group               port -> each of its security groups
//   security-groups.default            a project's default group -> project_id
//   security-group-rules.group         rule -> security_group_id
//   security-group-rules.remote_group  rule -> remote_group_id
std::vector<IndexSpec> defaultIndexes();

// The "networks.segment" index's key: "<type> <physical network> <id>".
std::string segmentKey(std::string_view type, std::string_view physical_network,
                       int64_t segmentation_id);

std::string documentKey(std::string_view collection, std::string_view id);

class ModelState {
 public:
  explicit ModelState(store::Store& store, std::vector<IndexSpec> indexes = defaultIndexes())
      : store_(store), index_specs_(std::move(indexes)) {}
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

  // Like read(), with the revision the tables reflect: f(tables, revision).
  template <typename F>
  auto readAt(F&& f) const {
    std::shared_lock lock(mu_);
    return f(static_cast<const Tables&>(tables_), applied_);
  }

  // Runs the transaction; if the compares fail, Conflict (the caller
  // re-reads and retries). Waits until the watch has applied the revision.
  Result<store::Revision> commit(std::span<const store::Compare> compares,
                                 std::span<const store::Op> ops);

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
  void follow();
  void apply(const std::vector<store::Event>& events, store::Revision upto);
  Result<void> reload();

  store::Store& store_;
  const std::vector<IndexSpec> index_specs_;
  mutable std::shared_mutex mu_;
  Tables tables_;
  store::Revision applied_ = 0;      // guarded by mu_
  std::vector<Observer> observers_;  // guarded by mu_

  Mutex wait_mu_;
  CondVar applied_cv_;
  std::unique_ptr<store::Watch> watch_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace canopy::state
