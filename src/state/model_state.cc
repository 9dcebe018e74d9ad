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

std::string documentKey(std::string_view collection, std::string_view id) {
  std::string key(kPrefix);
  key += collection;
  key += '/';
  key += id;
  return key;
}

ModelState::~ModelState() { stop(); }

Result<void> ModelState::reload() {
  auto range = store_.range(kPrefix);
  if (!range) return std::move(range).error();
  Tables fresh;
  for (auto& kv : range->kvs) {
    std::string_view collection, id;
    if (!splitKey(kv.key, collection, id)) continue;  // uniqueness keys and the like
    auto doc = model::parseJson(kv.value);
    if (!doc) {
      spdlog::error("model: {} holds invalid JSON; skipped", kv.key);
      continue;
    }
    fresh[std::string(collection)][std::string(id)] = Document{std::move(*doc), kv.mod_revision};
  }
  auto watch = store_.watch(std::string(kPrefix), range->revision + 1);
  if (!watch) return std::move(watch).error();
  {
    std::unique_lock lock(mu_);
    tables_ = std::move(fresh);
    applied_ = range->revision;
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
    if (!events->empty()) apply(*events);
    // A watch batch may cover revisions with no events of ours; track them too.
    store::Revision upto = watch_->nextRevision() - 1;
    {
      std::unique_lock lock(mu_);
      if (upto > applied_) applied_ = upto;
    }
    { MutexLock lock(wait_mu_); }
    applied_cv_.notify_all();
  }
}

void ModelState::apply(const std::vector<store::Event>& events) {
  std::unique_lock lock(mu_);
  for (const auto& e : events) {
    std::string_view collection, id;
    if (!splitKey(e.kv.key, collection, id)) continue;
    auto& table = tables_[std::string(collection)];
    if (e.type == store::Event::Type::Delete) {
      table.erase(std::string(id));
      continue;
    }
    auto doc = model::parseJson(e.kv.value);
    if (!doc) {
      spdlog::error("model: {} holds invalid JSON; skipped", e.kv.key);
      continue;
    }
    table[std::string(id)] = Document{std::move(*doc), e.kv.mod_revision};
  }
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

}  // namespace canopy::state
