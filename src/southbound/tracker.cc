#include "southbound/tracker.h"

#include <algorithm>

#include "model/json.h"
#include "southbound/keys.h"
#include "southbound/objects.h"

namespace canopy::southbound {
namespace {

using model::Json;
using model::stringAt;
using Ids = std::set<std::string, std::less<>>;

// How many versions a host's log keeps, and how many keys in all.
constexpr size_t kLogVersions = 256;
constexpr size_t kLogKeys = 16384;

void addPort(Touched& t, const Json& p) {
  t.ports.insert(stringAt(p, "id"));
  t.networks.insert(stringAt(p, "network_id"));
  if (auto h = stringAt(p, "binding:host_id"); !h.empty()) t.hosts.insert(h);
  for (auto& h : standbyHostsOf(p)) t.hosts.insert(std::move(h));
  if (isRouterPort(stringAt(p, "device_owner"))) t.routers.insert(stringAt(p, "device_id"));
  for (const auto& g : p.value("security_groups", Json::array())) {
    if (g.is_string()) t.groups.insert(g.get<std::string>());
  }
}

template <typename A, typename B>
bool intersects(const A& a, const B& b) {
  if (a.size() <= b.size()) {
    return std::any_of(a.begin(), a.end(), [&](const auto& x) { return b.count(x) > 0; });
  }
  return std::any_of(b.begin(), b.end(), [&](const auto& x) { return a.count(x) > 0; });
}

template <typename K>
bool mapIntersects(const Ids& ids, const std::map<std::string, K>& m) {
  return std::any_of(ids.begin(), ids.end(), [&](const auto& x) { return m.count(x) > 0; });
}

template <typename Map, typename Key>
auto valueOr(const Map& m, const Key& k, typename Map::mapped_type fallback) {
  auto it = m.find(k);
  return it == m.end() ? fallback : it->second;
}

// Puts `value` (or nothing) at `key` of `objects`, where `old` held the
// object before; records the keys that changed.
template <typename Map, typename Key>
void place(Map& objects, const Key& old, const Key& key,
           std::optional<typename Map::mapped_type> value, std::set<Key>& changed) {
  if (old != Key{} && (!value || old != key)) {
    objects.erase(old);
    changed.insert(old);
  }
  if (!value) return;
  auto [it, fresh] = objects.try_emplace(key, *value);
  if (fresh || !(it->second == *value)) {
    it->second = *std::move(value);
    changed.insert(key);
  }
}

}  // namespace

bool Touched::empty() const {
  return !everything && networks.empty() && routers.empty() && groups.empty() && ports.empty() &&
         hosts.empty() && floating_ips.empty();
}

void Touched::merge(const Touched& o) {
  networks.insert(o.networks.begin(), o.networks.end());
  routers.insert(o.routers.begin(), o.routers.end());
  groups.insert(o.groups.begin(), o.groups.end());
  ports.insert(o.ports.begin(), o.ports.end());
  hosts.insert(o.hosts.begin(), o.hosts.end());
  floating_ips.insert(o.floating_ips.begin(), o.floating_ips.end());
  everything = everything || o.everything;
}

namespace {

// A load balancer's object changed: its VIP port carries its listeners
// (objects.cc), so the port is touched. From a member or monitor to its
// pool, from a pool or listener to the load balancer, to its VIP port.
void addLoadBalancer(Touched& t, const state::Tables& tables, const std::string& collection,
                     const Json& d) {
  const Json* lb = &d;
  std::string lb_id;
  if (collection == "lbaas-members" || collection == "lbaas-healthmonitors") {
    const Json* pool = docOf(tables, "lbaas-pools", stringAt(d, "pool_id"));
    if (pool == nullptr) return;  // gone too: its own change touches the port
    lb_id = stringAt(*pool, "loadbalancer_id");
  } else if (collection == "lbaas-listeners" || collection == "lbaas-pools") {
    lb_id = stringAt(d, "loadbalancer_id");
  }
  if (!lb_id.empty()) lb = docOf(tables, "lbaas-loadbalancers", lb_id);
  if (lb == nullptr) return;
  std::string port = stringAt(*lb, "vip_port_id");
  t.ports.insert(port);
  if (const Json* p = docOf(tables, "ports", port)) t.networks.insert(stringAt(*p, "network_id"));
}

// A port came, went or changed: members at its addresses name it (their
// port key, for their host's health checks).
void addMembersAt(Touched& t, const state::Tables& tables, const Json& port) {
  for (const auto& f : port.value("fixed_ips", Json::array())) {
    for (const auto& m : tables.lookup("lbaas-members.address", stringAt(f, "ip_address"))) {
      if (const Json* doc = docOf(tables, "lbaas-members", m)) {
        addLoadBalancer(t, tables, "lbaas-members", *doc);
      }
    }
  }
}

// A metering label or rule changed: the routers it applies to carry it
// (objects.cc), its project's, or every router for a shared label.
void addMeteredRouters(Touched& t, const state::Tables& tables, const std::string& collection,
                       const Json& d) {
  const Json* label = &d;
  if (collection == "metering-label-rules") {
    label = docOf(tables, "metering-labels", stringAt(d, "metering_label_id"));
    if (label == nullptr) return;  // gone too: its own change touches them
  }
  auto shared = label->find("shared");
  if (shared != label->end() && shared->is_boolean() && shared->get<bool>()) {
    for (const auto& [id, doc] : tables.collection("routers")) t.routers.insert(id);
    return;
  }
  for (const auto& id : tables.lookup("routers.project", stringAt(*label, "project_id"))) {
    t.routers.insert(id);
  }
}

// A QoS policy changed: the ports under it carry it (objects.cc qosOf),
// those it is set on and those of the networks it is set on.
void addQosPorts(Touched& t, const state::Tables& tables, const std::string& policy) {
  for (const auto& id : tables.lookup("ports.qos_policy", policy)) {
    if (const Json* p = docOf(tables, "ports", id)) addPort(t, *p);
  }
  for (const auto& network : tables.lookup("networks.qos_policy", policy)) {
    t.networks.insert(network);
    for (const auto& id : tables.lookup("ports.network", network)) t.ports.insert(id);
  }
}

// A trunk's parent and subports.
std::vector<std::string> trunkPorts(const Json& trunk) {
  std::vector<std::string> out{stringAt(trunk, "port_id")};
  for (const auto& s : trunk.value("sub_ports", Json::array())) {
    if (s.is_object()) out.push_back(stringAt(s, "port_id"));
  }
  return out;
}

}  // namespace

Touched touchedBy(const std::vector<state::Change>& changes, const state::Tables& tables) {
  Touched t;
  for (const auto& c : changes) {
    if (c.collection.empty()) t.everything = true;
    for (const std::optional<Json>* side : {&c.before, &c.after}) {
      if (!side->has_value()) continue;
      const Json& d = **side;
      if (c.collection == "ports") {
        addPort(t, d);
        addMembersAt(t, tables, d);
      } else if (c.collection == "networks") {
        t.networks.insert(c.id);
        // Its ports take its QoS policy when they have none of their own.
        if (c.before.has_value() != c.after.has_value() ||
            stringAt(d, "qos_policy_id") !=
                stringAt(c.before.has_value() ? *c.before : *c.after, "qos_policy_id")) {
          for (const auto& id : tables.lookup("ports.network", c.id)) t.ports.insert(id);
        }
      } else if (c.collection == "subnets") {
        t.networks.insert(stringAt(d, "network_id"));
      } else if (c.collection == "routers") {
        t.routers.insert(c.id);
      } else if (c.collection == "floatingips") {
        t.floating_ips.insert(c.id);
        t.routers.insert(stringAt(d, "router_id"));
        t.ports.insert(stringAt(d, "port_id"));
      } else if (c.collection == "security-groups") {
        t.groups.insert(c.id);
      } else if (c.collection == "security-group-rules") {
        t.groups.insert(stringAt(d, "security_group_id"));
        t.groups.insert(stringAt(d, "remote_group_id"));
      } else if (c.collection == "address-groups") {
        // The groups whose rules name it expand its addresses.
        for (const auto& rule : tables.lookup("security-group-rules.remote_address_group", c.id)) {
          if (const Json* r = docOf(tables, "security-group-rules", rule)) {
            t.groups.insert(stringAt(*r, "security_group_id"));
          }
        }
      } else if (c.collection == "local-ip-associations") {
        // The port carries it; views that hold the port's network hold it.
        std::string port = stringAt(d, "fixed_port_id");
        t.ports.insert(port);
        if (const Json* p = docOf(tables, "ports", port)) {
          t.networks.insert(stringAt(*p, "network_id"));
        }
      } else if (c.collection == kAgentsCollection) {
        t.hosts.insert(c.id);
      } else if (c.collection.rfind("lbaas-", 0) == 0) {
        addLoadBalancer(t, tables, c.collection, d);
      } else if (c.collection == "metering-labels" || c.collection == "metering-label-rules") {
        addMeteredRouters(t, tables, c.collection, d);
      } else if (c.collection == "qos-policies") {
        addQosPorts(t, tables, c.id);
      } else if (c.collection == "logs") {
        // The ports it logs carry its events.
        std::vector<std::string> ports;
        if (auto target = stringAt(d, "target_id"); !target.empty()) {
          ports.push_back(target);
        } else {
          auto group = stringAt(d, "resource_id");
          const auto& ids = group.empty()
                                ? tables.lookup("ports.project", stringAt(d, "project_id"))
                                : tables.lookup("ports.security_group", group);
          ports.assign(ids.begin(), ids.end());
        }
        for (const auto& port : ports) {
          if (const Json* p = docOf(tables, "ports", port)) addPort(t, *p);
        }
      } else if (c.collection == "trunks") {
        // The parent carries its subports; each subport its parent.
        for (const std::string& port : trunkPorts(d)) {
          if (const Json* p = docOf(tables, "ports", port)) addPort(t, *p);
          t.ports.insert(port);
        }
      }
    }
    if (c.collection == kKeysCollection) {
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
        if (const Json* p = docOf(tables, "ports", id)) {
          addPort(t, *p);
          addMembersAt(t, tables, *p);
        }
        // Its trunk's other ports name it by its key.
        for (const char* index : {"trunks.port", "trunks.subport"}) {
          for (const auto& trunk : tables.lookup(index, id)) {
            if (const Json* d = docOf(tables, "trunks", trunk)) {
              for (const std::string& port : trunkPorts(*d)) {
                if (const Json* p = docOf(tables, "ports", port)) addPort(t, *p);
              }
            }
          }
        }
      }
    }
  }
  // A group's rules carry a rule naming another only while that one exists
  // with a key: a group that comes, goes or gets its key touches the groups
  // whose rules name it.
  std::vector<std::string> named;
  for (const auto& g : t.groups) {
    for (const auto& rule : tables.lookup("security-group-rules.remote_group", g)) {
      if (const Json* r = docOf(tables, "security-group-rules", rule)) {
        named.push_back(stringAt(*r, "security_group_id"));
      }
    }
  }
  t.groups.insert(named.begin(), named.end());
  return t;
}

// A view and what it was built from, by id: one host's own, or shared by
// the hosts whose closure is `seed_networks` and `seed_routers`.
struct ViewTracker::Entry {
  std::optional<std::string> own;  // the host, for a view of its own
  std::set<std::string> seed_networks, seed_routers;

  HostView view;
  bool built = false;
  Touched pending;

  // The closure's skeleton.
  std::set<std::string> networks, routers;
  std::map<std::string, std::set<std::string>> router_networks;
  std::set<std::string> external_networks;  // of `networks`
  std::map<std::string, uint32_t> switch_key;

  // Ports in the view.
  struct PortRef {
    uint32_t key = 0;
    std::string network, host;
    std::vector<std::string> groups{};        // every group it names
    std::vector<std::string> keyed_groups{};  // those that have keys
  };
  std::map<std::string, PortRef> ports;
  std::map<std::string, std::set<std::string>> network_ports;

  // Security groups: those ports name (with whether they had a key), the
  // roots (named and keyed), and the closure through remote groups (ids
  // looked at, with the key of those in the view).
  std::map<std::string, int> group_refs;
  std::map<std::string, uint32_t> group_ref_key;
  std::map<std::string, int> group_roots;
  std::map<std::string, uint32_t> group_key;
  std::map<std::string, std::vector<std::string>> group_remotes;

  // Routers in the view, and the hosts of their gateways.
  std::map<std::string, uint32_t> router_key;
  std::map<std::string, std::vector<std::string>> router_host;  // the gateway's, standbys after

  // Hosts named by the view (the local one, ports', gateways'), with the
  // key each had when last looked at (0: none, or no agent).
  std::map<std::string, int> host_refs;
  std::map<std::string, uint32_t> host_key;

  // Versions: the view's, and the keys each recent one changed.
  uint64_t version = 0;
  uint64_t log_base = 0;  // the version before the log's first
  std::deque<std::pair<uint64_t, ViewKeys>> log;
  size_t log_keys = 0;

  bool concernedBy(const Touched& t) const {
    return t.everything || intersects(t.networks, networks) || intersects(t.routers, routers) ||
           mapIntersects(t.groups, group_refs) || mapIntersects(t.groups, group_key) ||
           mapIntersects(t.hosts, host_refs);
  }

  // The changes since `from`, if the log still covers it; nullopt if not.
  std::optional<ViewKeys> since(uint64_t from) const {
    if (from == version) return ViewKeys{};
    bool covered = from == log_base && built;
    ViewKeys keys;
    for (const auto& [v, k] : log) {
      if (v == from) covered = true;
      if (v > from) keys.merge(k);
    }
    if (!covered || from > version) return std::nullopt;
    return keys;
  }

  void record(uint64_t at, ViewKeys keys) {
    log_keys += keys.size();
    log.emplace_back(at, std::move(keys));
    version = at;
    while (!log.empty() && (log.size() > kLogVersions || log_keys > kLogKeys)) {
      log_keys -= log.front().second.size();
      log_base = log.front().first;
      log.pop_front();
    }
  }

  // Whether a port on one of the closure's networks is in this view: on an
  // external network only the own host's, and none in a shared view.
  bool visible(const Json& port, bool external_network) const {
    if (own) return inView(port, external_network, *own);
    return !external_network && inView(port, false, "");
  }

  void update(const state::Tables& t, const Touched& touched, ViewKeys& changed);
};

void ViewTracker::Entry::update(const state::Tables& t, const Touched& touched, ViewKeys& changed) {
  std::set<std::string> dirty_nets, dirty_ports, dirty_routers, dirty_hosts, dirty_fips;
  const Ids& dirty_groups = touched.groups;
  bool regroup = false;
  if (own && host_refs.empty()) {
    host_refs[*own] = 1;  // the local host is always named
    dirty_hosts.insert(*own);
  }

  // The skeleton: networks and routers that enter, leave, or were touched.
  ViewClosure c;
  if (own) {
    c = closureOf(t, *own);
  } else {
    c.networks = seed_networks;
    c.routers = seed_routers;
    for (const auto& r : seed_routers) {
      if (auto nets = routerNetworks(t, r); !nets.empty()) c.router_networks[r] = std::move(nets);
    }
  }
  for (const auto& n : c.networks) {
    if (!networks.count(n) || touched.networks.count(n)) dirty_nets.insert(n);
  }
  for (const auto& n : networks) {
    if (!c.networks.count(n)) dirty_nets.insert(n);
  }
  for (const auto& r : c.routers) {
    if (!routers.count(r) || touched.routers.count(r)) dirty_routers.insert(r);
  }
  for (const auto& r : routers) {
    if (!c.routers.count(r)) dirty_routers.insert(r);
  }
  networks = std::move(c.networks);
  routers = std::move(c.routers);
  router_networks = std::move(c.router_networks);

  // Switches. A network that comes, goes, gets its key or changes whether
  // it is external re-evaluates its ports; a changed switch its routers.
  std::set<std::string> changed_switches;
  for (const auto& n : dirty_nets) {
    bool in = networks.count(n) > 0;
    uint32_t old = valueOr(switch_key, n, 0u);
    auto s = in ? switchOf(t, n) : std::nullopt;
    uint32_t now = s ? s->key : 0;
    size_t before = changed.switches.size();
    place(view.switches, old, now, std::move(s), changed.switches);
    if (now != 0) {
      switch_key[n] = now;
    } else {
      switch_key.erase(n);
    }
    bool external = in && isExternalNetwork(t, n);
    bool was_external = external_networks.count(n) > 0;
    if (external) {
      external_networks.insert(n);
    } else {
      external_networks.erase(n);
    }
    if (changed.switches.size() != before) changed_switches.insert(n);
    if (old != now || external != was_external || !in) {
      for (const auto& id : t.lookup("ports.network", n)) dirty_ports.insert(id);
      if (auto it = network_ports.find(n); it != network_ports.end()) {
        dirty_ports.insert(it->second.begin(), it->second.end());
      }
    }
  }
  if (!changed_switches.empty()) {
    for (const auto& [r, nets] : router_networks) {
      if (intersects(nets, changed_switches)) dirty_routers.insert(r);
    }
  }

  // Hosts that got or lost their key (or agent): the ports and gateways
  // bound to them name them again.
  for (const auto& h : touched.hosts) {
    dirty_hosts.insert(h);
    auto known = host_key.find(h);
    if (known == host_key.end() || known->second == hostKeyOf(t, h)) continue;
    for (const auto& id : t.lookup("ports.host", h)) dirty_ports.insert(id);
    for (const auto& [r, gw] : router_host) {
      if (std::find(gw.begin(), gw.end(), h) != gw.end()) dirty_routers.insert(r);
    }
  }
  // Groups that got or lost their key: the ports that name them.
  for (const auto& g : touched.groups) {
    auto known = group_ref_key.find(g);
    if (known == group_ref_key.end()) continue;
    uint32_t now = keyOf(t, KeyKind::Group, g);
    if (known->second == now) continue;
    known->second = now;
    for (const auto& id : t.lookup("ports.security_group", g)) dirty_ports.insert(id);
  }
  dirty_ports.insert(touched.ports.begin(), touched.ports.end());
  dirty_fips.insert(touched.floating_ips.begin(), touched.floating_ips.end());

  auto refHost = [&](const std::string& h, int by) {
    if (h.empty()) return;
    int& n = host_refs[h];
    n += by;
    if (n == 0 || n == by) dirty_hosts.insert(h);
    if (n == 0) host_refs.erase(h);
  };
  auto refGroups = [&](const PortRef& p, int by) {
    for (const auto& g : p.groups) {
      int& n = group_refs[g];
      n += by;
      if (n == by) group_ref_key[g] = keyOf(t, KeyKind::Group, g);
      if (n == 0) {
        group_refs.erase(g);
        group_ref_key.erase(g);
      }
    }
    for (const auto& g : p.keyed_groups) {
      int& n = group_roots[g];
      n += by;
      if (n == 0 || n == by) regroup = true;
      if (n == 0) group_roots.erase(g);
    }
  };

  // Ports.
  auto hasSwitch = [&](uint32_t sw) { return view.switches.count(sw) > 0; };
  for (const auto& id : dirty_ports) {
    std::optional<PortRef> now;
    std::optional<topology::Port> port;
    if (const Json* d = docOf(t, "ports", id)) {
      std::string net = stringAt(*d, "network_id");
      if (networks.count(net) && visible(*d, external_networks.count(net) > 0)) {
        PortRef ref{.network = net, .host = stringAt(*d, "binding:host_id")};
        port = portOf(t, *d, hasSwitch, &ref.keyed_groups);
        if (port) {
          ref.key = port->key;
          for (const auto& g : d->value("security_groups", Json::array())) {
            if (g.is_string()) ref.groups.push_back(g.get<std::string>());
          }
          now = std::move(ref);
        }
      }
    }
    auto old = ports.find(id);
    uint32_t old_key = old == ports.end() ? 0 : old->second.key;
    if (old != ports.end()) {
      refGroups(old->second, -1);
      refHost(old->second.host, -1);
      network_ports[old->second.network].erase(id);
      if (network_ports[old->second.network].empty()) network_ports.erase(old->second.network);
    }
    place(view.ports, old_key, now ? now->key : 0, std::move(port), changed.ports);
    if ((old_key != 0) != now.has_value()) {
      for (const auto& f : t.lookup("floatingips.port", id)) dirty_fips.insert(f);
      for (const auto& f : t.lookup("floatingips.forwarded_port", id)) dirty_fips.insert(f);
    }
    if (now) {
      refGroups(*now, 1);
      refHost(now->host, 1);
      network_ports[now->network].insert(id);
      ports[id] = *std::move(now);
    } else if (old != ports.end()) {
      ports.erase(old);
    }
  }

  // Security groups: the closure from the roots through the groups rules
  // name; touched groups are converted again.
  if (regroup || mapIntersects(dirty_groups, group_key)) {
    std::map<std::string, uint32_t> next_key;
    std::deque<std::string> queue;
    for (const auto& [g, n] : group_roots) queue.push_back(g);
    while (!queue.empty()) {
      std::string g = queue.front();
      queue.pop_front();
      if (next_key.count(g)) continue;
      auto known = group_key.find(g);
      if (known == group_key.end() || dirty_groups.count(g)) {
        std::vector<std::string> remotes;
        auto group = groupOf(t, g, &remotes);
        uint32_t key = group ? group->key : 0;
        place(view.groups, known == group_key.end() ? 0u : known->second, key, std::move(group),
              changed.groups);
        group_remotes[g] = std::move(remotes);
        next_key[g] = key;
      } else {
        next_key[g] = known->second;
      }
      for (const auto& r : group_remotes[g]) {
        if (!next_key.count(r)) queue.push_back(r);
      }
    }
    for (const auto& [g, key] : group_key) {
      if (next_key.count(g)) continue;
      if (key != 0) {
        view.groups.erase(key);
        changed.groups.insert(key);
      }
      group_remotes.erase(g);
    }
    group_key = std::move(next_key);
  }

  // Routers.
  auto switchAt = [&](uint32_t sw) -> const topology::Switch* {
    auto it = view.switches.find(sw);
    return it == view.switches.end() ? nullptr : &it->second;
  };
  for (const auto& r : dirty_routers) {
    uint32_t old = valueOr(router_key, r, 0u);
    auto router = routers.count(r) ? routerOf(t, r, switchAt) : std::nullopt;
    uint32_t now = router ? router->key : 0;
    std::vector<std::string> gateway_hosts =
        router && router->gateway ? gatewayHostsOf(t, r) : std::vector<std::string>{};
    place(view.routers, old, now, std::move(router), changed.routers);
    for (const auto& h : valueOr(router_host, r, std::vector<std::string>{})) refHost(h, -1);
    for (const auto& h : gateway_hosts) refHost(h, 1);
    if (gateway_hosts.empty()) {
      router_host.erase(r);
    } else {
      router_host[r] = std::move(gateway_hosts);
    }
    if (now != 0) {
      router_key[r] = now;
    } else {
      router_key.erase(r);
    }
    if (old != now) {
      for (const auto& f : t.lookup("floatingips.router", r)) dirty_fips.insert(f);
    }
  }

  // Hosts.
  if (own) view.local_host = hostKeyOf(t, *own);
  for (const auto& h : dirty_hosts) {
    uint32_t old = valueOr(host_key, h, 0u);
    auto entry = host_refs.count(h) ? hostOf(t, h) : std::nullopt;
    uint32_t now = entry ? entry->key : 0;
    place(view.hosts, old, now, std::move(entry), changed.hosts);
    if (host_refs.count(h)) {
      host_key[h] = now;
    } else {
      host_key.erase(h);
    }
  }

  // Floating IPs of the routers in the view, on ports in the view.
  auto hasPort = [&](uint32_t port) { return view.ports.count(port) > 0; };
  for (const auto& f : dirty_fips) {
    std::optional<topology::FloatingIp> fip;
    if (const Json* d = docOf(t, "floatingips", f)) {
      auto router = router_key.find(stringAt(*d, "router_id"));
      if (router != router_key.end()) fip = floatingIpOf(t, *d, router->second, hasPort);
    }
    bool had = view.floating_ips.count(f) > 0;
    place(view.floating_ips, had ? f : std::string(), fip ? f : std::string(), std::move(fip),
          changed.floating_ips);
  }
}

struct ViewTracker::View {
  Mutex mu;
  Entry entry CANOPY_GUARDED_BY(mu);
  // Brings the entry to `revision`: 1 if it was computed again, else 0.
  uint64_t upToDate(const state::Tables& tables, uint64_t revision) CANOPY_REQUIRES(mu);
};

struct ViewTracker::Host {
  Mutex mu;
  std::shared_ptr<View> view CANOPY_GUARDED_BY(mu);  // the one it is in
  bool recheck CANOPY_GUARDED_BY(mu) = true;         // its closure may have changed
  std::optional<SteadyTime> left CANOPY_GUARDED_BY(mu);
  // The last versions sent to it: from which view, at which of its versions.
  struct Sent {
    uint64_t version, from_version;
    std::weak_ptr<View> from;
  };
  std::deque<Sent> sent CANOPY_GUARDED_BY(mu);
  // The view it is in at `revision`, up to date.
  std::shared_ptr<View> placed(ViewTracker& tracker, const state::Tables& tables, uint64_t revision,
                               const std::string& host) CANOPY_REQUIRES(mu);
};

namespace {

// How many of the versions sent to a host are remembered, to resume from.
constexpr size_t kSentKept = 16;

std::string signatureOf(const ViewClosure& c) {
  std::string s = "n:";
  for (const auto& n : c.networks) s += n + ",";
  s += ";r:";
  for (const auto& r : c.routers) s += r + ",";
  return s;
}

// Whether `host` has a port of its own on an external network of its
// closure: only its view shows it.
bool ownsExternalPort(const state::Tables& t, const std::string& host, const ViewClosure& c) {
  for (const Json* p : indexedDocs(t, "ports.host", "ports", host)) {
    std::string net = stringAt(*p, "network_id");
    if (c.networks.count(net) && isExternalNetwork(t, net) && inView(*p, true, host)) return true;
  }
  return false;
}

}  // namespace

ViewTracker::ViewTracker(const Clock& clock) : clock_(clock) {}
ViewTracker::~ViewTracker() = default;

void ViewTracker::onChanges(const std::vector<state::Change>& changes,
                            const state::Tables& tables) {
  Touched t = touchedBy(changes, tables);
  if (t.empty()) return;
  std::set<const View*> concerned;
  {
    MutexLock lock(views_mu_);
    for (auto it = views_.begin(); it != views_.end();) {
      auto v = it->second.lock();
      if (v == nullptr) {
        it = views_.erase(it);
        continue;
      }
      MutexLock view_lock(v->mu);
      if (v->entry.built && v->entry.concernedBy(t)) {
        v->entry.pending.merge(t);
        concerned.insert(v.get());
      }
      ++it;
    }
  }
  MutexLock lock(hosts_mu_);
  auto now = clock_.now();
  for (auto it = hosts_.begin(); it != hosts_.end();) {
    Host& h = *it->second;
    MutexLock host_lock(h.mu);
    if (h.left && now - *h.left > kKeepDisconnected) {
      it = hosts_.erase(it);
      continue;
    }
    if (t.everything || t.hosts.count(it->first) || concerned.count(h.view.get())) {
      h.recheck = true;
    }
    ++it;
  }
}

std::shared_ptr<ViewTracker::Host> ViewTracker::placeOf(const std::string& host) {
  MutexLock lock(hosts_mu_);
  auto& h = hosts_[host];
  if (!h) h = std::make_shared<Host>();
  return h;
}

std::shared_ptr<ViewTracker::View> ViewTracker::viewNamed(const std::string& signature,
                                                          const std::string* own,
                                                          const ViewClosure* closure) {
  MutexLock lock(views_mu_);
  auto& weak = views_[signature];
  auto v = weak.lock();
  if (v == nullptr) {
    v = std::make_shared<View>();
    MutexLock view_lock(v->mu);
    if (own != nullptr) {
      v->entry.own = *own;
    } else {
      v->entry.seed_networks = closure->networks;
      v->entry.seed_routers = closure->routers;
    }
    weak = v;
  }
  return v;
}

std::shared_ptr<ViewTracker::View> ViewTracker::Host::placed(ViewTracker& tracker,
                                                             const state::Tables& tables,
                                                             uint64_t revision,
                                                             const std::string& host) {
  if (!recheck && view != nullptr) return view;
  recheck = false;
  ViewClosure c = closureOf(tables, host);
  std::shared_ptr<View> v;
  if (!ownsExternalPort(tables, host, c)) {
    v = tracker.viewNamed(signatureOf(c), nullptr, &c);
    MutexLock lock(v->mu);
    tracker.recomputations_ += v->upToDate(tables, revision);
    // A host named by nothing in it but itself needs its own view, which
    // names it.
    if (!v->entry.host_refs.count(host)) v = nullptr;
  }
  if (v == nullptr) v = tracker.viewNamed("h:" + host, &host, nullptr);
  view = v;
  return v;
}

uint64_t ViewTracker::View::upToDate(const state::Tables& tables, uint64_t revision) {
  Entry& e = entry;
  if (!e.built) {
    ViewKeys ignored;
    e.update(tables, Touched{}, ignored);
    e.built = true;
    e.version = e.log_base = revision;
    return 1;
  } else if (e.pending.everything) {
    // The model was reloaded: built again from nothing, and compared.
    Entry fresh;
    fresh.own = e.own;
    fresh.seed_networks = e.seed_networks;
    fresh.seed_routers = e.seed_routers;
    ViewKeys ignored;
    fresh.update(tables, Touched{}, ignored);
    ViewKeys changed;
    auto compare = [](const auto& before, const auto& after, auto& keys) {
      for (const auto& [k, x] : after) {
        auto it = before.find(k);
        if (it == before.end() || !(it->second == x)) keys.insert(k);
      }
      for (const auto& [k, x] : before) {
        if (!after.count(k)) keys.insert(k);
      }
    };
    compare(e.view.switches, fresh.view.switches, changed.switches);
    compare(e.view.ports, fresh.view.ports, changed.ports);
    compare(e.view.routers, fresh.view.routers, changed.routers);
    compare(e.view.groups, fresh.view.groups, changed.groups);
    compare(e.view.hosts, fresh.view.hosts, changed.hosts);
    compare(e.view.floating_ips, fresh.view.floating_ips, changed.floating_ips);
    fresh.version = e.version;
    fresh.log_base = e.log_base;
    fresh.log = std::move(e.log);
    fresh.log_keys = e.log_keys;
    fresh.built = true;
    e = std::move(fresh);
    if (!changed.empty() && revision > e.version) e.record(revision, std::move(changed));
    return 1;
  } else if (!e.pending.empty()) {
    Touched pending = std::move(e.pending);
    e.pending = Touched{};
    ViewKeys changed;
    e.update(tables, pending, changed);
    if (!changed.empty()) e.record(std::max(revision, e.version + 1), std::move(changed));
    return 1;
  }
  return 0;
}

std::optional<pb::View> ViewTracker::next(const state::Tables& tables, uint64_t revision,
                                          const std::string& host, Cursor& cursor) {
  auto h = placeOf(host);
  MutexLock host_lock(h->mu);
  h->left.reset();
  std::shared_ptr<View> v = h->placed(*this, tables, revision, host);
  uint32_t local_host = hostKeyOf(tables, host);

  // What the agent holds: the version last sent in this session, or the
  // one it resumes from, and the view that version came from if known.
  uint64_t base = cursor.sent ? cursor.version : cursor.resume_from;
  std::shared_ptr<View> from;
  uint64_t from_version = base;
  if (cursor.sent) {
    from = cursor.from;
    from_version = cursor.from_version;
  } else {
    for (const auto& s : h->sent) {
      if (s.version == base) {
        from = s.from.lock();
        from_version = s.from_version;
      }
    }
  }
  std::optional<pb::ViewDigest> held = std::move(cursor.held);
  cursor.held.reset();
  bool resync = std::exchange(cursor.resync, false) || base == 0;

  // The keys in which what it holds may differ from the view now.
  std::optional<ViewKeys> keys;
  bool moved = false;
  if (!resync && from != nullptr && from != v) {
    // It comes from another view: what changed there since, and where the
    // two differ now.
    MutexLock lock(from->mu);
    recomputations_ += from->upToDate(tables, revision);
    keys = from->entry.since(from_version);
    if (keys) held = digest(from->entry.view);
    moved = true;
  }
  MutexLock view_lock(v->mu);
  recomputations_ += v->upToDate(tables, revision);
  Entry& e = v->entry;
  if (!resync) {
    if (moved) {
      if (keys) keys->merge(differences(e.view, *held));
    } else if (from != nullptr || e.own) {
      // The same view (any version of a host's own view is the host's).
      keys = e.since(from_version);
    }
    if (!keys && !cursor.sent && held) {
      keys = differences(e.view, *held);
      moved = true;  // the version it holds may be none of this view's
    }
  }
  if (cursor.sent && keys && keys->empty() && local_host == cursor.local_host) {
    if (moved) {
      // It holds this view as it is now, with the version it has.
      for (auto& s : h->sent) {
        if (s.version == cursor.version) s = {s.version, e.version, v};
      }
      cursor.from = v;
      cursor.from_version = e.version;
    }
    return std::nullopt;
  }
  // A host that moved gets the revision now as its version: its view is
  // the host's at this revision, which may be none of this view's versions.
  uint64_t version = moved ? std::max(e.version, revision) : e.version;
  pb::View message = keys ? toDelta(e.view, *keys, version, base) : toSnapshot(e.view, version);
  message.set_local_host(local_host);
  cursor.sent = true;
  cursor.version = version;
  cursor.local_host = local_host;
  cursor.from = v;
  cursor.from_version = e.version;
  h->sent.push_back({version, e.version, v});
  if (h->sent.size() > kSentKept) h->sent.pop_front();
  return message;
}

HostView ViewTracker::view(const state::Tables& tables, uint64_t revision,
                           const std::string& host) {
  auto h = placeOf(host);
  MutexLock host_lock(h->mu);
  auto v = h->placed(*this, tables, revision, host);
  MutexLock lock(v->mu);
  recomputations_ += v->upToDate(tables, revision);
  HostView copy = v->entry.view;
  copy.local_host = hostKeyOf(tables, host);
  return copy;
}

void ViewTracker::disconnected(const std::string& host) {
  std::shared_ptr<Host> h;
  {
    MutexLock lock(hosts_mu_);
    if (auto it = hosts_.find(host); it != hosts_.end()) h = it->second;
  }
  if (h == nullptr) return;
  MutexLock lock(h->mu);
  h->left = clock_.now();
}

uint64_t ViewTracker::recomputations() const { return recomputations_.load(); }

size_t ViewTracker::views() const {
  MutexLock lock(views_mu_);
  return static_cast<size_t>(std::count_if(views_.begin(), views_.end(),
                                           [](const auto& v) { return !v.second.expired(); }));
}

}  // namespace canopy::southbound
