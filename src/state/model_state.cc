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

const std::set<std::string, std::less<>>& Tables::lookup(std::string_view index,
                                                         std::string_view key) const {
  static const std::set<std::string, std::less<>> kEmpty;
  auto i = indexes_.find(index);
  if (i == indexes_.end()) return kEmpty;
  auto k = i->second.find(key);
  return k == i->second.end() ? kEmpty : k->second;
}

void Tables::erase(const std::vector<IndexSpec>& specs, std::string_view collection,
                   std::string_view id) {
  auto t = find(collection);
  if (t == end()) return;
  auto d = t->second.find(id);
  if (d == t->second.end()) return;
  for (const auto& spec : specs) {
    if (spec.collection != collection) continue;
    auto& index = indexes_[spec.name];
    for (const auto& key : spec.keys(d->second.doc)) {
      auto k = index.find(key);
      if (k == index.end()) continue;
      k->second.erase(std::string(id));
      if (k->second.empty()) index.erase(k);
    }
  }
  t->second.erase(d);
}

void Tables::put(const std::vector<IndexSpec>& specs, std::string_view collection,
                 std::string_view id, Document doc) {
  erase(specs, collection, id);
  for (const auto& spec : specs) {
    if (spec.collection != collection) continue;
    auto& index = indexes_[spec.name];
    for (auto& key : spec.keys(doc.doc)) index[key].insert(std::string(id));
  }
  (*this)[std::string(collection)][std::string(id)] = std::move(doc);
}

std::vector<IndexSpec> defaultIndexes() {
  auto field = [](const char* name) {
    return [name](const Json& d) {
      std::vector<std::string> keys;
      if (auto it = d.find(name); it != d.end() && it->is_string()) keys.push_back(*it);
      return keys;
    };
  };
  auto fixedIps = [](const char* name, bool with_network) {
    return [name, with_network](const Json& d) {
      std::vector<std::string> keys;
      auto ips = d.find("fixed_ips");
      if (ips == d.end() || !ips->is_array()) return keys;
      for (const auto& f : *ips) {
        std::string v = f.value(name, "");
        keys.push_back(with_network ? d.value("network_id", "") + " " + v : v);
      }
      return keys;
    };
  };
  std::vector<IndexSpec> specs = {
      {"subnets.network", "subnets", field("network_id")},
      {"ports.device", "ports", field("device_id")},
      {"ports.host", "ports", field("binding:host_id")},
      {"floatingips.port", "floatingips", field("port_id")},
      {"floatingips.router", "floatingips", field("router_id")},
      {"networks.segment", "networks",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto type = d.find("provider:network_type");
         if (type == d.end() || !type->is_string()) return keys;
         auto physnet = d.find("provider:physical_network");
         auto id = d.find("provider:segmentation_id");
         keys.push_back(
             segmentKey(type->get_ref<const std::string&>(),
                        physnet != d.end() && physnet->is_string() ? std::string(*physnet) : "",
                        id != d.end() && id->is_number_integer() ? id->get<int64_t>() : 0));
         return keys;
       }},
      {"ports.network", "ports", field("network_id")},
      {"ports.router_network", "ports",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto owner = d.find("device_owner");
         auto net = d.find("network_id");
         if (owner != d.end() && owner->is_string() &&
             owner->get_ref<const std::string&>().rfind("network:router_", 0) == 0 &&
             net != d.end() && net->is_string()) {
           keys.push_back(*net);
         }
         return keys;
       }},
      {"ports.subnet", "ports", fixedIps("subnet_id", false)},
      {"ports.address", "ports", fixedIps("ip_address", true)},
      {"security-group-rules.group", "security-group-rules", field("security_group_id")},
      {"security-group-rules.remote_group", "security-group-rules", field("remote_group_id")},
      {"security-groups.default", "security-groups",
       [](const Json& d) {
         std::vector<std::string> keys;
         if (d.value("canopy:default", false)) keys.push_back(d.value("project_id", ""));
         return keys;
       }},
      {"ports.security_group", "ports",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto groups = d.find("security_groups");
         if (groups == d.end() || !groups->is_array()) return keys;
         for (const auto& g : *groups) {
           if (g.is_string()) keys.push_back(g);
         }
         return keys;
       }},
      {"ports.mac", "ports",
       [](const Json& d) {
         return std::vector<std::string>{d.value("network_id", "") + " " +
                                         d.value("mac_address", "")};
       }},
  };
  // Resources counted against quotas, by project.
  for (const char* collection : {"networks", "subnets", "ports", "routers", "floatingips",
                                 "security-groups", "security-group-rules"}) {
    specs.push_back({std::string(collection) + ".project", collection, field("project_id")});
  }
  return specs;
}

std::string segmentKey(std::string_view type, std::string_view physical_network,
                       int64_t segmentation_id) {
  std::string key(type);
  key += ' ';
  key += physical_network;
  key += ' ';
  key += std::to_string(segmentation_id);
  return key;
}

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
    fresh.put(index_specs_, collection, id, Document{std::move(*doc), kv.mod_revision});
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
    auto c = tables_.find(collection);
    if (c == tables_.end()) return std::nullopt;
    auto d = c->second.find(id);
    if (d == c->second.end()) return std::nullopt;
    return d->second.doc;
  };
  for (const auto& e : events) {
    std::string_view collection, id;
    if (!splitKey(e.kv.key, collection, id)) continue;
    if (e.type == store::Event::Type::Delete) {
      if (!observers_.empty()) {
        changes.push_back(
            {std::string(collection), std::string(id), current(collection, id), std::nullopt});
      }
      tables_.erase(index_specs_, collection, id);
      continue;
    }
    auto doc = model::parseJson(e.kv.value);
    if (!doc) {
      spdlog::error("model: {} holds invalid JSON; skipped", e.kv.key);
      continue;
    }
    if (!observers_.empty()) {
      changes.push_back({std::string(collection), std::string(id), current(collection, id), *doc});
    }
    tables_.put(index_specs_, collection, id, Document{std::move(*doc), e.kv.mod_revision});
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
