#include "southbound/tracker.h"

#include "model/json.h"

namespace canopy::southbound {
namespace {

using model::Json;
using model::stringAt;

bool intersects(const std::set<std::string, std::less<>>& a,
                const std::set<std::string, std::less<>>& b) {
  const auto& small = a.size() < b.size() ? a : b;
  const auto& large = a.size() < b.size() ? b : a;
  for (const auto& x : small) {
    if (large.count(x)) return true;
  }
  return false;
}

void addPort(ViewDeps& t, const Json& p) {
  t.ports.insert(stringAt(p, "id"));
  t.networks.insert(stringAt(p, "network_id"));
  if (auto h = stringAt(p, "binding:host_id"); !h.empty()) t.hosts.insert(h);
  if (stringAt(p, "device_owner").rfind("network:router_", 0) == 0) {
    t.routers.insert(stringAt(p, "device_id"));
  }
  for (const auto& g : p.value("security_groups", Json::array())) {
    if (g.is_string()) t.groups.insert(g.get<std::string>());
  }
}

const Json* find(const state::Tables& t, std::string_view collection, std::string_view id) {
  auto c = t.find(collection);
  if (c == t.end()) return nullptr;
  auto d = c->second.find(id);
  return d == c->second.end() ? nullptr : &d->second.doc;
}

}  // namespace

ViewDeps touchedBy(const std::vector<state::Change>& changes, const state::Tables& tables) {
  ViewDeps t;
  for (const auto& c : changes) {
    for (const std::optional<Json>* side : {&c.before, &c.after}) {
      if (!side->has_value()) continue;
      const Json& d = **side;
      if (c.collection == "ports") {
        addPort(t, d);
      } else if (c.collection == "networks") {
        t.networks.insert(c.id);
      } else if (c.collection == "subnets") {
        t.networks.insert(stringAt(d, "network_id"));
      } else if (c.collection == "routers") {
        t.routers.insert(c.id);
      } else if (c.collection == "floatingips") {
        t.routers.insert(stringAt(d, "router_id"));
        t.ports.insert(stringAt(d, "port_id"));
      } else if (c.collection == "security-groups") {
        t.groups.insert(c.id);
      } else if (c.collection == "security-group-rules") {
        t.groups.insert(stringAt(d, "security_group_id"));
        t.groups.insert(stringAt(d, "remote_group_id"));
      } else if (c.collection == "agents") {
        t.hosts.insert(c.id);
      }
    }
    if (c.collection == "southbound-keys") {
      // "<kind>:<id>": the object that got its key.
      auto colon = c.id.find(':');
      if (colon == std::string::npos) continue;
      std::string kind = c.id.substr(0, colon), id = c.id.substr(colon + 1);
      if (kind == "network") t.networks.insert(id);
      if (kind == "router") t.routers.insert(id);
      if (kind == "group") t.groups.insert(id);
      if (kind == "host") t.hosts.insert(id);
      if (kind == "port") {
        t.ports.insert(id);
        if (const Json* p = find(tables, "ports", id)) addPort(t, *p);
      }
    }
  }
  return t;
}

void ViewTracker::onChanges(const std::vector<state::Change>& changes,
                            const state::Tables& tables) {
  bool reload = std::any_of(changes.begin(), changes.end(),
                            [](const state::Change& c) { return c.collection.empty(); });
  ViewDeps t = reload ? ViewDeps{} : touchedBy(changes, tables);
  MutexLock lock(mu_);
  for (auto& [host, e] : hosts_) {
    if (e.dirty) continue;
    if (reload || intersects(t.hosts, e.deps.hosts) || intersects(t.networks, e.deps.networks) ||
        intersects(t.routers, e.deps.routers) || intersects(t.groups, e.deps.groups) ||
        intersects(t.ports, e.deps.ports)) {
      e.dirty = true;
    }
  }
}

HostView ViewTracker::view(const state::Tables& tables, const std::string& host, bool* recomputed) {
  MutexLock lock(mu_);
  Entry& e = hosts_[host];
  if (recomputed != nullptr) *recomputed = e.dirty;
  if (e.dirty) {
    e.deps = ViewDeps{};
    e.view = computeView(tables, host, &e.deps);
    e.dirty = false;
    ++recomputations_;
  }
  return e.view;
}

void ViewTracker::forget(const std::string& host) {
  MutexLock lock(mu_);
  hosts_.erase(host);
}

uint64_t ViewTracker::recomputations() const {
  MutexLock lock(mu_);
  return recomputations_;
}

}  // namespace canopy::southbound
