#include "state/model_state.h"

#include <spdlog/spdlog.h>

namespace canopy::state {
namespace {

// Splits "/canopy/v1/<collection>/<id>"; false for other keys.
bool splitKey(std::string_view key, std::string_view& collection, std::string_view& id) {
  if (!key.starts_with(kPrefix)) return false;
  key.remove_prefix(kPrefix.size());
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return false;
  collection = key.substr(0, slash);
  id = key.substr(slash + 1);
  return !collection.empty() && !id.empty() && id.find('/') == std::string_view::npos;
}

}  // namespace

ModelState::~ModelState() { stop(); }

std::optional<Json> ModelState::admit(const store::KeyValue& kv, std::string_view collection,
                                      std::string_view id) const {
  auto doc = model::parseJson(kv.value);
  if (!doc) {
    spdlog::error("model: {} holds a value that is not JSON ({}); left out", kv.key,
                  doc.error().message());
    return std::nullopt;
  }
  Result<void> fits =
      doc->is_object() ? ok() : Result<void>(Error(Errc::InvalidArgument, "not a JSON object"));
  if (fits && check_) fits = check_(collection, id, *doc);
  if (!fits) {
    spdlog::error("model: {} is not a document Canopy wrote ({}); left out", kv.key,
                  fits.error().message());
    return std::nullopt;
  }
  return std::move(*doc);
}

Result<void> ModelState::reload() {
  auto range = store_.range(kPrefix);
  if (!range) return std::move(range).error();
  Tables fresh(index_specs_);
  for (auto& kv : range->kvs) {
    std::string_view collection, id;
    if (!splitKey(kv.key, collection, id)) continue;  // uniqueness keys and the like
    auto doc = admit(kv, collection, id);
    if (!doc) continue;
    fresh.put(collection, id, Document{std::move(*doc), kv.mod_revision});
  }
  auto watch = store_.watch(std::string(kPrefix), range->revision + 1);
  if (!watch) return std::move(watch).error();
  {
    std::unique_lock lock(mu_);
    tables_ = std::move(fresh);
    applied_ = range->revision;
    const std::vector<Change> everything = {Change{}};  // empty collection: all of it
    for (const auto& o : observers_) o(everything, tables_);
  }
  watch_ = std::move(*watch);
  { MutexLock lock(wait_mu_); }
  applied_cv_.notify_all();
  return ok();
}

Result<void> ModelState::start() {
  if (auto r = reload(); !r) return r;
  thread_ = std::thread([this] { follow(); });
  return ok();
}

void ModelState::stop() {
  if (stopping_.exchange(true)) return;
  { MutexLock lock(wait_mu_); }
  applied_cv_.notify_all();
  if (watch_) watch_->cancel();
  if (thread_.joinable()) thread_.join();
}

void ModelState::follow() {
  while (!stopping_.load()) {
    auto events = watch_->next(std::chrono::milliseconds(500));
    if (!events) {
      if (stopping_.load()) return;
      if (events.error().code() == Errc::Compacted) {
        spdlog::warn("model: {}; reloading", events.error().message());
        if (auto r = reload(); !r) spdlog::error("model: reload failed: {}", r.error().message());
        continue;
      }
      spdlog::error("model: watch failed: {}", events.error().message());
      return;
    }
    // A watch batch may cover revisions with no events of ours; track them too.
    store::Revision upto = watch_->nextRevision() - 1;
    if (!events->empty()) {
      apply(*events, upto);
    } else {
      std::unique_lock lock(mu_);
      if (upto > applied_) applied_ = upto;
    }
    { MutexLock lock(wait_mu_); }
    applied_cv_.notify_all();
  }
}

void ModelState::observe(Observer observer) {
  std::unique_lock lock(mu_);
  observers_.push_back(std::move(observer));
}

void ModelState::apply(const std::vector<store::Event>& events, store::Revision upto) {
  std::unique_lock lock(mu_);
  std::vector<Change> changes;
  auto current = [&](std::string_view collection, std::string_view id) -> std::optional<Json> {
    const Document* d = tables_.find(collection, id);
    if (d == nullptr) return std::nullopt;
    return d->doc;
  };
  for (const auto& e : events) {
    std::string_view collection, id;
    if (!splitKey(e.kv.key, collection, id)) continue;
    if (e.type == store::Event::Type::Delete) {
      if (!observers_.empty()) {
        changes.push_back(
            {std::string(collection), std::string(id), current(collection, id), std::nullopt});
      }
      tables_.erase(collection, id);
      continue;
    }
    auto doc = admit(e.kv, collection, id);
    if (!doc) {
      // What was there (if anything) is no longer a document: gone.
      if (tables_.find(collection, id) != nullptr) {
        if (!observers_.empty()) {
          changes.push_back(
              {std::string(collection), std::string(id), current(collection, id), std::nullopt});
        }
        tables_.erase(collection, id);
      }
      continue;
    }
    if (!observers_.empty()) {
      changes.push_back({std::string(collection), std::string(id), current(collection, id), *doc});
    }
    tables_.put(collection, id, Document{std::move(*doc), e.kv.mod_revision});
  }
  // The tables and the revision they reflect move together (readAt).
  if (upto > applied_) applied_ = upto;
  for (const auto& o : observers_) o(changes, tables_);
}

store::Revision ModelState::waitPast(store::Revision seen, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(wait_mu_);
  while (appliedRevision() <= seen && !stopping_.load()) {
    if (applied_cv_.wait_until(wait_mu_, deadline) == std::cv_status::timeout) break;
  }
  return appliedRevision();
}

store::Revision ModelState::appliedRevision() const {
  std::shared_lock lock(mu_);
  return applied_;
}

Result<store::Revision> ModelState::commit(std::span<const store::Compare> compares,
                                           std::span<const store::Op> ops) {
  auto r = store_.txn(compares, ops, {});
  if (!r) return std::move(r).error();
  if (!r->succeeded) {
    // Another writer (another replica) got there first: what it wrote is
    // in the model before the caller reads again.
    waitPast(r->revision - 1, std::chrono::seconds(10));
    return Error(Errc::Conflict, "concurrent update; try again", "ConcurrentUpdate");
  }
  store::Revision want = r->revision;
  MutexLock lock(wait_mu_);
  while (appliedRevision() < want) {
    if (applied_cv_.wait_for(wait_mu_, std::chrono::seconds(10)) == std::cv_status::timeout &&
        appliedRevision() < want) {
      return Error(Errc::Unavailable,
                   "the model did not catch up with revision " + std::to_string(want));
    }
  }
  return want;
}

Result<store::Revision> ModelState::write(const WriteOptions& options, const Build& build) {
  MutexLock lock(write_mu_);
  for (int attempt = 0; attempt < options.attempts; ++attempt) {
    auto built = readAt([&](const Tables& tables,
                            store::Revision at) -> Result<std::pair<Transaction, store::Revision>> {
      Transaction txn(tables, options.caller, options.now);
      if (auto r = build(txn); !r) return std::move(r).error();
      return std::pair<Transaction, store::Revision>(std::move(txn), at);
    });
    if (!built) return std::move(built).error();
    auto& [txn, read_at] = *built;
    if (txn.empty()) return read_at;  // nothing to compare, nothing to write
    std::vector<store::Compare> compares = txn.compares();
    if (options.fence) compares.push_back(*options.fence);
    auto committed = commit(compares, txn.ops());
    if (committed || committed.error().code() != Errc::Conflict) return committed;
  }
  return Error(Errc::Conflict, "too many concurrent updates; try again", "HTTPConflict");
}

}  // namespace canopy::state
