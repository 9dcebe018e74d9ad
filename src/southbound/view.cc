#include "southbound/view.h"

#include <deque>
#include <set>

#include "model/json.h"
#include "southbound/objects.h"

namespace canopy::southbound {
namespace {

using model::Json;
using model::stringAt;

class Builder {
 public:
  Builder(const state::Tables& t, std::string_view host) : t_(t), host_(host) {}

  HostView run() {
    ViewClosure closure = closureOf(t_, host_);
    view_.local_host = hostKey(host_);
    for (const auto& net : closure.networks) {
      if (auto s = switchOf(t_, net)) view_.switches[s->key] = *std::move(s);
    }
    auto hasSwitch = [&](uint32_t sw) { return view_.switches.count(sw) > 0; };
    std::set<std::string> group_ids;
    for (const auto& net : closure.networks) {
      bool external = isExternalNetwork(t_, net);
      for (const Json* p : indexedDocs(t_, "ports.network", "ports", net)) {
        if (!inView(*p, external, host_)) continue;
        std::vector<std::string> groups;
        auto port = portOf(t_, *p, hasSwitch, &groups);
        if (!port) continue;
        group_ids.insert(groups.begin(), groups.end());
        hostKey(stringAt(*p, "binding:host_id"));
        view_.ports[port->key] = *std::move(port);
      }
    }
    auto switchAt = [&](uint32_t sw) -> const topology::Switch* {
      auto it = view_.switches.find(sw);
      return it == view_.switches.end() ? nullptr : &it->second;
    };
    for (const auto& id : closure.routers) {
      auto router = routerOf(t_, id, switchAt);
      if (!router) continue;
      if (router->gateway) {
        for (const auto& h : gatewayHostsOf(t_, id)) hostKey(h);
        // Distributed SNAT: the hosts its replies are steered to.
        for (const Json* p : indexedDocs(t_, "ports.device", "ports", id)) {
          if (stringAt(*p, "device_owner") != "network:router_gateway") continue;
          for (const auto& [h, range] : snatLeaseHostsOf(*p)) hostKey(h);
        }
      }
      for (const Json* f : indexedDocs(t_, "floatingips.router", "floatingips", id)) {
        auto fip = floatingIpOf(t_, *f, router->key,
                                [&](uint32_t port) { return view_.ports.count(port) > 0; });
        if (fip) view_.floating_ips[fip->id] = *std::move(fip);
      }
      view_.routers[router->key] = *std::move(router);
    }
    // Security groups: the ports' and, transitively, those their rules name.
    std::deque<std::string> queue(group_ids.begin(), group_ids.end());
    std::set<std::string> seen(group_ids.begin(), group_ids.end());
    while (!queue.empty()) {
      std::string g = queue.front();
      queue.pop_front();
      std::vector<std::string> remotes;
      auto group = groupOf(t_, g, &remotes);
      if (!group) continue;
      view_.groups[group->key] = *std::move(group);
      for (auto& r : remotes) {
        if (seen.insert(r).second) queue.push_back(std::move(r));
      }
    }
    return std::move(view_);
  }

 private:
  uint32_t hostKey(const std::string& name) {
    if (name.empty()) return 0;
    auto h = hostOf(t_, name);
    if (!h || hostKeyOf(t_, name) == 0) return 0;
    uint32_t key = h->key;
    view_.hosts.try_emplace(key, *std::move(h));
    return key;
  }

  const state::Tables& t_;
  const std::string host_;
  HostView view_;
};

}  // namespace

bool inView(const Json& port, bool external_network, std::string_view host) {
  std::string owner = stringAt(port, "device_owner");
  if (isRouterPort(owner) || owner == "network:floatingip") return false;
  // On an external network only this host's own ports matter.
  return !external_network || stringAt(port, "binding:host_id") == host;
}

std::set<std::string> routerNetworks(const state::Tables& t, std::string_view router) {
  std::set<std::string> nets;
  for (const Json* p : indexedDocs(t, "ports.device", "ports", router)) {
    std::string owner = stringAt(*p, "device_owner");
    if (owner == "network:router_interface" || owner == "network:router_gateway") {
      nets.insert(stringAt(*p, "network_id"));
    }
  }
  return nets;
}

ViewClosure closureOf(const state::Tables& t, std::string_view host) {
  ViewClosure c;
  std::deque<std::string> queue;
  auto addNetwork = [&](const std::string& id) {
    if (c.networks.insert(id).second) queue.push_back(id);
  };
  auto addRouter = [&](const std::string& id) {
    if (id.empty() || !c.routers.insert(id).second) return;
    auto nets = routerNetworks(t, id);
    for (const auto& n : nets) addNetwork(n);
    if (!nets.empty()) c.router_networks[id] = std::move(nets);
  };
  std::vector<const Json*> own = indexedDocs(t, "ports.host", "ports", host);
  for (const Json* p : own) {
    if (!isRouterPort(stringAt(*p, "device_owner"))) addNetwork(stringAt(*p, "network_id"));
  }
  // Routers whose gateway this host holds, or stands by for: their inside
  // networks too.
  for (const Json* p : own) {
    if (stringAt(*p, "device_owner") == "network:router_gateway") {
      addRouter(stringAt(*p, "device_id"));
    }
  }
  for (const Json* p : indexedDocs(t, "ports.standby_host", "ports", host)) {
    if (stringAt(*p, "device_owner") == "network:router_gateway") {
      addRouter(stringAt(*p, "device_id"));
    }
  }
  // Routers on the networks, and the networks behind them; external
  // networks are included but not expanded through.
  while (!queue.empty()) {
    std::string net = queue.front();
    queue.pop_front();
    if (docOf(t, "networks", net) == nullptr || isExternalNetwork(t, net)) continue;
    for (const Json* p : indexedDocs(t, "ports.router_network", "ports", net)) {
      if (stringAt(*p, "device_owner") == "network:router_interface") {
        addRouter(stringAt(*p, "device_id"));
      }
    }
  }
  return c;
}

HostView computeView(const state::Tables& tables, std::string_view host) {
  return Builder(tables, host).run();
}

}  // namespace canopy::southbound
