#include "southbound/view.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <set>

#include "model/json.h"
#include "southbound/keys.h"

namespace canopy::southbound {
namespace {

using model::Json;
using model::stringAt;
using topology::IpAddr;
using topology::IpPrefix;

const Json* doc(const state::Tables& t, std::string_view collection, std::string_view id) {
  auto c = t.find(collection);
  if (c == t.end()) return nullptr;
  auto d = c->second.find(id);
  return d == c->second.end() ? nullptr : &d->second.doc;
}

std::vector<const Json*> indexed(const state::Tables& t, std::string_view index,
                                 std::string_view collection, std::string_view key) {
  std::vector<const Json*> out;
  for (const auto& id : t.lookup(index, key)) {
    if (const Json* d = doc(t, collection, id)) out.push_back(d);
  }
  return out;
}

std::optional<topology::MacAddress> parseMac(const std::string& text) {
  unsigned b[6];
  char tail;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4],
                  &b[5], &tail) != 6) {
    return std::nullopt;
  }
  topology::MacAddress m;
  for (size_t i = 0; i < 6; ++i) m.bytes[i] = static_cast<uint8_t>(b[i]);
  return m;
}

std::optional<IpPrefix> parsePrefix(const std::string& text) {
  if (text.find('/') != std::string::npos) return IpPrefix::parse(text);
  auto ip = IpAddr::parse(text);
  if (!ip) return std::nullopt;
  return IpPrefix{*ip, static_cast<uint8_t>(ip->family == 4 ? 32 : 128)};
}

bool boolAt(const Json& d, const char* key, bool fallback) {
  auto it = d.find(key);
  return it != d.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

std::optional<uint8_t> protocolNumber(const Json& rule) {
  auto it = rule.find("protocol");
  if (it == rule.end() || it->is_null()) return std::nullopt;
  std::string p = it->is_string() ? it->get<std::string>() : it->dump();
  bool v6 = stringAt(rule, "ethertype") == "IPv6";
  if (p == "tcp") return 6;
  if (p == "udp") return 17;
  if (p == "icmp") return v6 ? 58 : 1;
  if (p == "ipv6-icmp" || p == "icmpv6") return 58;
  if (p == "sctp") return 132;
  if (p == "any" || p.empty()) return std::nullopt;
  if (std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      p.size() <= 3) {
    int n = std::stoi(p);
    if (n <= 255) return static_cast<uint8_t>(n);
  }
  return std::nullopt;
}

std::optional<uint16_t> u16At(const Json& d, const char* key) {
  auto it = d.find(key);
  if (it == d.end() || !it->is_number_integer()) return std::nullopt;
  auto v = it->get<int64_t>();
  if (v < 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

bool isRouterPort(const std::string& owner) { return owner.rfind("network:router_", 0) == 0; }

class Builder {
 public:
  Builder(const state::Tables& t, std::string_view host, ViewDeps* deps)
      : t_(t), host_(host), deps_(deps) {}

  HostView run() {
    if (deps_ != nullptr) deps_->hosts.insert(host_);
    view_.local_host = hostKey(host_);
    std::deque<std::string> networks;
    auto addNetwork = [&](const std::string& id) {
      if (networks_.insert(id).second) networks.push_back(id);
    };
    for (const Json* p : indexed(t_, "ports.host", "ports", host_)) {
      if (isRouterPort(stringAt(*p, "device_owner"))) continue;
      addNetwork(stringAt(*p, "network_id"));
    }
    // Routers whose gateway this host holds: their inside networks too.
    for (const Json* p : indexed(t_, "ports.host", "ports", host_)) {
      if (stringAt(*p, "device_owner") == "network:router_gateway") {
        addRouter(stringAt(*p, "device_id"), addNetwork);
      }
    }
    // Routers on the networks, and the networks behind them; external
    // networks are included but not expanded through.
    while (!networks.empty()) {
      std::string net = networks.front();
      networks.pop_front();
      const Json* n = doc(t_, "networks", net);
      if (n == nullptr || boolAt(*n, "router:external", false)) continue;
      for (const Json* p : indexed(t_, "ports.network", "ports", net)) {
        if (stringAt(*p, "device_owner") == "network:router_interface") {
          addRouter(stringAt(*p, "device_id"), addNetwork);
        }
      }
    }
    for (const auto& net : networks_) addSwitch(net);
    for (const auto& net : networks_) {
      const Json* n = doc(t_, "networks", net);
      bool external = n != nullptr && boolAt(*n, "router:external", false);
      for (const Json* p : indexed(t_, "ports.network", "ports", net)) {
        std::string owner = stringAt(*p, "device_owner");
        if (isRouterPort(owner) || owner == "network:floatingip") continue;
        // On an external network only this host's own ports matter.
        if (external && stringAt(*p, "binding:host_id") != host_) continue;
        addPort(*p);
      }
    }
    for (const auto& r : routers_) buildRouter(r);
    if (deps_ != nullptr) {
      deps_->networks.insert(networks_.begin(), networks_.end());
      deps_->routers.insert(routers_.begin(), routers_.end());
      deps_->groups.insert(group_ids_.begin(), group_ids_.end());
    }
    // Security groups: the ports' and, transitively, those their rules name.
    std::deque<std::string> groups(group_ids_.begin(), group_ids_.end());
    while (!groups.empty()) {
      std::string g = groups.front();
      groups.pop_front();
      addGroup(g, groups);
    }
    return std::move(view_);
  }

 private:
  template <typename AddNetwork>
  void addRouter(const std::string& id, AddNetwork&& addNetwork) {
    if (id.empty() || !routers_.insert(id).second) return;
    for (const Json* p : indexed(t_, "ports.device", "ports", id)) {
      std::string owner = stringAt(*p, "device_owner");
      if (owner == "network:router_interface" || owner == "network:router_gateway") {
        addNetwork(stringAt(*p, "network_id"));
      }
    }
  }

  uint32_t hostKey(const std::string& name) {
    if (name.empty()) return 0;
    if (deps_ != nullptr) deps_->hosts.insert(name);
    const Json* a = doc(t_, kAgentsCollection, name);
    uint32_t key = keyOf(t_, KeyKind::Host, name);
    if (a == nullptr || key == 0) return 0;
    if (!view_.hosts.count(key)) {
      auto ip = IpAddr::parse(stringAt(*a, "tunnel_ip"));
      bool geneve = true;
      if (auto e = a->find("encapsulations"); e != a->end() && e->is_array() && !e->empty()) {
        geneve = std::find(e->begin(), e->end(), Json("geneve")) != e->end();
      }
      view_.hosts[key] = {
          .key = key, .name = name, .tunnel_ip = ip.value_or(IpAddr{}), .geneve = geneve};
    }
    return key;
  }

  void addSwitch(const std::string& id) {
    const Json* n = doc(t_, "networks", id);
    uint32_t key = keyOf(t_, KeyKind::Network, id);
    if (n == nullptr || key == 0) return;
    topology::Switch s{.key = key, .id = id, .name = stringAt(*n, "name")};
    std::string type = stringAt(*n, "provider:network_type");
    int64_t segment = (*n).value("provider:segmentation_id", Json()).is_number_integer()
                          ? (*n)["provider:segmentation_id"].get<int64_t>()
                          : 0;
    if ((type == "geneve" || type == "vxlan") && segment > 0 && segment < (1 << 24)) {
      s.vni = static_cast<uint32_t>(segment);
    } else {
      s.vni = kInternalVniBase + (key & 0xfffff);
    }
    if (type == "flat" || type == "vlan") {
      s.physical_network = stringAt(*n, "provider:physical_network");
      if (type == "vlan" && segment > 0 && segment < 4095) s.vlan = static_cast<uint16_t>(segment);
    }
    if (auto mtu = u16At(*n, "mtu")) s.mtu = *mtu;
    s.external = boolAt(*n, "router:external", false);
    s.dns_domain = stringAt(*n, "dns_domain");
    for (const Json* sub : indexed(t_, "subnets.network", "subnets", id)) {
      auto cidr = IpPrefix::parse(stringAt(*sub, "cidr"));
      if (!cidr) continue;
      topology::Subnet out{.id = stringAt(*sub, "id"), .cidr = *cidr};
      if (auto gw = IpAddr::parse(stringAt(*sub, "gateway_ip"))) out.gateway = *gw;
      out.dhcp = boolAt(*sub, "enable_dhcp", true);
      for (const auto& d : sub->value("dns_nameservers", Json::array())) {
        if (auto ip = d.is_string() ? IpAddr::parse(d.get<std::string>()) : std::nullopt) {
          out.dns_servers.push_back(*ip);
        }
      }
      for (const auto& r : sub->value("host_routes", Json::array())) {
        auto dest = IpPrefix::parse(stringAt(r, "destination"));
        auto hop = IpAddr::parse(stringAt(r, "nexthop"));
        if (dest && hop) out.host_routes.push_back({*dest, *hop});
      }
      s.subnets.push_back(std::move(out));
    }
    std::sort(s.subnets.begin(), s.subnets.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    view_.switches[key] = std::move(s);
  }

  void addPort(const Json& p) {
    std::string id = stringAt(p, "id");
    if (deps_ != nullptr) deps_->ports.insert(id);
    uint32_t key = keyOf(t_, KeyKind::Port, id);
    uint32_t sw = keyOf(t_, KeyKind::Network, stringAt(p, "network_id"));
    auto mac = parseMac(stringAt(p, "mac_address"));
    if (key == 0 || !view_.switches.count(sw) || !mac) return;
    topology::Port out{.key = key, .id = id, .switch_key = sw, .mac = *mac};
    for (const auto& f : p.value("fixed_ips", Json::array())) {
      if (auto ip = IpAddr::parse(stringAt(f, "ip_address"))) out.ips.push_back(*ip);
    }
    for (const auto& pair : p.value("allowed_address_pairs", Json::array())) {
      auto prefix = parsePrefix(stringAt(pair, "ip_address"));
      auto pair_mac = pair.contains("mac_address") ? parseMac(stringAt(pair, "mac_address")) : mac;
      if (prefix && pair_mac) out.allowed_pairs.push_back({*pair_mac, *prefix});
    }
    out.port_security = boolAt(p, "port_security_enabled", true);
    out.admin_up = boolAt(p, "admin_state_up", true);
    for (const auto& g : p.value("security_groups", Json::array())) {
      if (!g.is_string()) continue;
      if (deps_ != nullptr) deps_->groups.insert(g.get<std::string>());
      if (uint32_t gk = keyOf(t_, KeyKind::Group, g.get<std::string>())) {
        out.groups.push_back(gk);
        group_ids_.insert(g.get<std::string>());
      }
    }
    std::sort(out.groups.begin(), out.groups.end());
    out.host = hostKey(stringAt(p, "binding:host_id"));
    out.device_owner = stringAt(p, "device_owner");
    out.name = stringAt(p, "name");
    view_.ports[key] = std::move(out);
  }

  void buildRouter(const std::string& id) {
    const Json* r = doc(t_, "routers", id);
    uint32_t key = keyOf(t_, KeyKind::Router, id);
    if (r == nullptr || key == 0) return;
    topology::Router out{.key = key, .id = id, .name = stringAt(*r, "name")};
    std::vector<const Json*> ports = indexed(t_, "ports.device", "ports", id);
    std::sort(ports.begin(), ports.end(),
              [](const Json* a, const Json* b) { return stringAt(*a, "id") < stringAt(*b, "id"); });
    for (const Json* p : ports) {
      std::string owner = stringAt(*p, "device_owner");
      uint32_t port_key = keyOf(t_, KeyKind::Port, stringAt(*p, "id"));
      uint32_t sw = keyOf(t_, KeyKind::Network, stringAt(*p, "network_id"));
      auto mac = parseMac(stringAt(*p, "mac_address"));
      if (port_key == 0 || !view_.switches.count(sw) || !mac) continue;
      const topology::Switch& s = view_.switches[sw];
      if (owner == "network:router_interface") {
        for (const auto& f : p->value("fixed_ips", Json::array())) {
          auto ip = IpAddr::parse(stringAt(f, "ip_address"));
          if (!ip) continue;
          for (const auto& sub : s.subnets) {
            if (sub.id == stringAt(f, "subnet_id")) {
              out.interfaces.push_back({.port_key = port_key,
                                        .switch_key = sw,
                                        .mac = *mac,
                                        .ip = *ip,
                                        .subnet = sub.cidr});
            }
          }
        }
      } else if (owner == "network:router_gateway") {
        topology::Gateway gw{.port_key = port_key, .switch_key = sw, .mac = *mac};
        for (const auto& f : p->value("fixed_ips", Json::array())) {
          auto ip = IpAddr::parse(stringAt(f, "ip_address"));
          if (!ip) continue;
          gw.ips.push_back(*ip);
          for (const auto& sub : s.subnets) {
            if (!gw.nexthop && sub.id == stringAt(f, "subnet_id") && sub.gateway &&
                ip->family == 4) {
              gw.nexthop = sub.gateway;
            }
          }
        }
        const Json& info = (*r).value("external_gateway_info", Json());
        gw.snat = info.is_object() ? boolAt(info, "enable_snat", true) : true;
        gw.host = hostKey(stringAt(*p, "binding:host_id"));
        out.gateway = std::move(gw);
      }
    }
    for (const auto& route : r->value("routes", Json::array())) {
      auto dest = IpPrefix::parse(stringAt(route, "destination"));
      auto hop = IpAddr::parse(stringAt(route, "nexthop"));
      if (dest && hop) out.routes.push_back({*dest, *hop});
    }
    for (const Json* f : indexed(t_, "floatingips.router", "floatingips", id)) {
      uint32_t port = keyOf(t_, KeyKind::Port, stringAt(*f, "port_id"));
      auto external = IpAddr::parse(stringAt(*f, "floating_ip_address"));
      auto fixed = IpAddr::parse(stringAt(*f, "fixed_ip_address"));
      if (port == 0 || !view_.ports.count(port) || !external || !fixed) continue;
      std::string fid = stringAt(*f, "id");
      view_.floating_ips[fid] = {
          .id = fid, .external = *external, .fixed = *fixed, .port_key = port, .router_key = key};
    }
    view_.routers[key] = std::move(out);
  }

  void addGroup(const std::string& id, std::deque<std::string>& more) {
    if (deps_ != nullptr) deps_->groups.insert(id);
    const Json* g = doc(t_, "security-groups", id);
    uint32_t key = keyOf(t_, KeyKind::Group, id);
    if (g == nullptr || key == 0 || view_.groups.count(key)) return;
    topology::SecurityGroup out{.key = key, .id = id, .name = stringAt(*g, "name")};
    std::vector<const Json*> rules =
        indexed(t_, "security-group-rules.group", "security-group-rules", id);
    std::sort(rules.begin(), rules.end(),
              [](const Json* a, const Json* b) { return stringAt(*a, "id") < stringAt(*b, "id"); });
    for (const Json* r : rules) {
      topology::Rule rule{.id = stringAt(*r, "id")};
      rule.direction = stringAt(*r, "direction") == "egress" ? topology::Direction::Egress
                                                             : topology::Direction::Ingress;
      rule.family = stringAt(*r, "ethertype") == "IPv6" ? 6 : 4;
      rule.protocol = protocolNumber(*r);
      rule.port_min = u16At(*r, "port_range_min");
      rule.port_max = u16At(*r, "port_range_max");
      if (auto prefix = IpPrefix::parse(stringAt(*r, "remote_ip_prefix"))) {
        rule.remote_prefix = *prefix;
      }
      std::string remote = stringAt(*r, "remote_group_id");
      if (!remote.empty()) {
        uint32_t rk = keyOf(t_, KeyKind::Group, remote);
        if (rk == 0 || doc(t_, "security-groups", remote) == nullptr) continue;
        rule.remote_group = rk;
        if (!view_.groups.count(rk)) more.push_back(remote);
      }
      out.rules.push_back(std::move(rule));
    }
    view_.groups[key] = std::move(out);
  }

  const state::Tables& t_;
  const std::string host_;
  ViewDeps* deps_;
  HostView view_;
  std::set<std::string> networks_;
  std::set<std::string> routers_;
  std::set<std::string> group_ids_;
};

}  // namespace

HostView computeView(const state::Tables& tables, std::string_view host, ViewDeps* deps) {
  return Builder(tables, host, deps).run();
}

}  // namespace canopy::southbound
