#include "datapath/topology/topology.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <mutex>

namespace canopy::datapath::topology {
namespace {

Error invalid(std::string message) { return Error(Errc::InvalidArgument, std::move(message)); }

template <typename T>
const T* findIn(const std::map<uint32_t, T>& m, uint32_t key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

// Maglev tables by their members: a topology is built again on every
// change of the view, and most changes leave the members alone.
std::shared_ptr<const nat::MaglevTable> maglevOf(const std::vector<nat::MaglevMember>& members) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<const nat::MaglevTable>> tables;
  std::string signature;
  for (const auto& m : members) signature += m.name + "/" + std::to_string(m.weight) + " ";
  // The smallest of these primes with 100 entries per member (or the
  // largest), so that shares follow weights within about 1%.
  uint32_t size = 65521;
  for (uint32_t prime : {1021u, 4093u, 16381u}) {
    if (prime >= 100 * members.size()) {
      size = prime;
      break;
    }
  }
  std::lock_guard lock(mu);
  if (auto t = tables[signature].lock()) return t;
  std::erase_if(tables, [](const auto& e) { return e.second.expired(); });
  auto t = std::make_shared<const nat::MaglevTable>(members, size);
  tables[signature] = t;
  return t;
}

std::string memberName(const LbMember& m) {
  return m.address.toString() + "/" + std::to_string(m.port);
}

// The balancer of a VIP port's listener at an address of `family`: the
// members of that family that take new connections, in the same order on
// every host.
Balancer balancerOf(const Port& p, size_t index, uint8_t family) {
  const auto& l = p.listeners[index];
  Balancer b{.vip_port = p.key, .listener = index};
  std::vector<size_t> order(l.members.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t c) {
    const auto& x = l.members[a];
    const auto& y = l.members[c];
    return std::tie(x.address, x.port) < std::tie(y.address, y.port);
  });
  std::vector<nat::MaglevMember> primary, backup;
  for (size_t i : order) {
    const auto& m = l.members[i];
    if (!m.up || m.weight == 0 || m.address.family != family) continue;
    (m.backup ? backup : primary).push_back({.name = memberName(m), .weight = m.weight});
    (m.backup ? b.backup_members : b.primary_members).push_back(static_cast<uint16_t>(i));
  }
  if (!primary.empty()) b.primary = maglevOf(primary);
  if (!backup.empty()) b.backup = maglevOf(backup);
  return b;
}

}  // namespace

const Balancer* Topology::balancerAt(uint32_t switch_key, const IpAddress& vip, uint8_t protocol,
                                     uint16_t port) const {
  if (balancers_.empty()) return nullptr;
  auto it = balancers_.find({switch_key, vip, protocol, port});
  return it == balancers_.end() ? nullptr : &it->second;
}

const Switch* Topology::findSwitch(uint32_t key) const { return findIn(switches_, key); }
const Port* Topology::findPort(uint32_t key) const { return findIn(ports_, key); }
const Router* Topology::findRouter(uint32_t key) const { return findIn(routers_, key); }
const SecurityGroup* Topology::findGroup(uint32_t key) const { return findIn(groups_, key); }
const Host* Topology::findHost(uint32_t key) const { return findIn(hosts_, key); }

const Port* Topology::portByMac(uint32_t switch_key, const MacAddress& mac) const {
  auto it = port_by_mac_.find({switch_key, mac});
  return it == port_by_mac_.end() ? nullptr : findPort(it->second);
}

const Port* Topology::portByIp(uint32_t switch_key, const IpAddress& ip) const {
  auto it = port_by_ip_.find({switch_key, ip});
  return it == port_by_ip_.end() ? nullptr : findPort(it->second);
}

const RouterInterface* Topology::routerInterfaceOn(uint32_t switch_key, const IpAddress& ip,
                                                   const Router** router) const {
  for (const auto& [key, r] : routers_) {
    for (const auto& i : r.interfaces) {
      if (i.switch_key == switch_key && i.ip == ip) {
        if (router != nullptr) *router = &r;
        return &i;
      }
    }
  }
  return nullptr;
}

const FloatingIp* Topology::floatingIpFor(uint32_t port_key, const IpAddress& fixed) const {
  auto it = floating_by_fixed_.find({port_key, fixed});
  return it == floating_by_fixed_.end() ? nullptr : &floating_ips_[it->second];
}

const FloatingIp* Topology::floatingIpBehind(uint32_t router_key, const IpAddress& fixed) const {
  auto it = floating_by_router_fixed_.find({router_key, fixed});
  return it == floating_by_router_fixed_.end() ? nullptr : &floating_ips_[it->second];
}

Topology::Forwarded Topology::forwardingFrom(uint32_t port_key, const IpAddress& source,
                                             uint8_t protocol, uint16_t source_port) const {
  auto [from, to] = forwardings_by_port_.equal_range(port_key);
  for (auto it = from; it != to; ++it) {
    const FloatingIp& f = floating_ips_[it->second.first];
    const PortForwarding& pf = f.forwardings[it->second.second];
    if (pf.protocol == protocol && pf.internal == source && source_port >= pf.internal_min &&
        source_port <= pf.internalMax()) {
      return {&f, &pf};
    }
  }
  return {};
}

const FloatingIp* Topology::floatingIpAt(const IpAddress& external) const {
  auto it = floating_by_external_.find(external);
  return it == floating_by_external_.end() ? nullptr : &floating_ips_[it->second];
}

namespace {

// Index entries name a router and one of its interfaces, or -1: its gateway.
std::optional<Topology::RouterPort> routerPortOf(const Topology& t,
                                                 std::pair<uint32_t, int> entry) {
  const Router* r = t.findRouter(entry.first);
  if (r == nullptr) return std::nullopt;
  return Topology::RouterPort{
      r, entry.second < 0 ? nullptr : &r->interfaces[static_cast<size_t>(entry.second)]};
}

}  // namespace

std::optional<Topology::RouterPort> Topology::routerPortByMac(uint32_t switch_key,
                                                              const MacAddress& mac) const {
  auto it = router_by_mac_.find({switch_key, mac});
  if (it == router_by_mac_.end()) return std::nullopt;
  return routerPortOf(*this, it->second);
}

std::optional<Topology::RouterPort> Topology::routerPortByIp(uint32_t switch_key,
                                                             const IpAddress& ip) const {
  auto it = router_by_ip_.find({switch_key, ip});
  if (it == router_by_ip_.end()) return std::nullopt;
  return routerPortOf(*this, it->second);
}

const Switch* Topology::switchByVni(uint32_t vni) const {
  auto it = switch_by_vni_.find(vni);
  return it == switch_by_vni_.end() ? nullptr : findSwitch(it->second);
}

const std::vector<uint32_t>& Topology::portsOn(uint32_t switch_key) const {
  static const std::vector<uint32_t> kNone;
  auto it = ports_on_.find(switch_key);
  return it == ports_on_.end() ? kNone : it->second;
}

bool Topology::groupHasAddress(uint32_t group_key, const IpAddress& ip) const {
  return group_addresses_.count({group_key, ip}) != 0;
}

const std::vector<uint32_t>& Topology::localIpPorts(uint32_t switch_key,
                                                    const IpAddress& local) const {
  static const std::vector<uint32_t> kNone;
  auto it = local_ip_ports_.find({switch_key, local});
  return it == local_ip_ports_.end() ? kNone : it->second;
}

const std::vector<uint32_t>& Topology::groupMembers(uint32_t group_key) const {
  static const std::vector<uint32_t> kNone;
  auto it = group_members_.find(group_key);
  return it == group_members_.end() ? kNone : it->second;
}

TopologyBuilder& TopologyBuilder::addSwitch(Switch s) {
  switches_.push_back(std::move(s));
  return *this;
}
TopologyBuilder& TopologyBuilder::addPort(Port p) {
  ports_.push_back(std::move(p));
  return *this;
}
TopologyBuilder& TopologyBuilder::addRouter(Router r) {
  routers_.push_back(std::move(r));
  return *this;
}
TopologyBuilder& TopologyBuilder::addGroup(SecurityGroup g) {
  groups_.push_back(std::move(g));
  return *this;
}
TopologyBuilder& TopologyBuilder::addHost(Host h) {
  hosts_.push_back(std::move(h));
  return *this;
}
TopologyBuilder& TopologyBuilder::addFloatingIp(FloatingIp f) {
  floating_ips_.push_back(std::move(f));
  return *this;
}

Result<std::shared_ptr<const Topology>> TopologyBuilder::build(uint64_t version) const {
  auto t = std::make_shared<Topology>();
  t->version_ = version;
  auto keyed = [](auto& into, const auto& items, const char* what) -> Result<void> {
    for (const auto& item : items) {
      if (item.key == 0) return invalid(std::string(what) + " " + item.id + " has key 0");
      if (!into.emplace(item.key, item).second) {
        return invalid(std::string("two ") + what + "s have key " + std::to_string(item.key));
      }
    }
    return ok();
  };
  if (auto r = keyed(t->switches_, switches_, "switch"); !r) return std::move(r).error();
  if (auto r = keyed(t->ports_, ports_, "port"); !r) return std::move(r).error();
  if (auto r = keyed(t->routers_, routers_, "router"); !r) return std::move(r).error();
  if (auto r = keyed(t->groups_, groups_, "security group"); !r) return std::move(r).error();
  for (const auto& h : hosts_) {
    if (h.key == 0 || !t->hosts_.emplace(h.key, h).second) {
      return invalid("host " + h.name + ": key " + std::to_string(h.key) + " is 0 or taken");
    }
  }
  for (const auto& [key, p] : t->ports_) {
    if (!t->switches_.count(p.switch_key)) {
      return invalid("port " + p.id + " is on unknown switch " + std::to_string(p.switch_key));
    }
    if (p.host != 0 && !t->hosts_.count(p.host)) {
      return invalid("port " + p.id + " is on unknown host " + std::to_string(p.host));
    }
    bool stateless = p.port_security && !p.groups.empty();
    for (uint32_t g : p.groups) {
      auto group = t->groups_.find(g);
      if (group == t->groups_.end()) {
        return invalid("port " + p.id + " names unknown security group " + std::to_string(g));
      }
      t->group_members_[g].push_back(key);
      stateless = stateless && !group->second.stateful;
    }
    if (stateless) t->stateless_ports_.insert(key);
    if (!t->port_by_mac_.emplace(std::pair{p.switch_key, p.mac}, key).second) {
      return invalid("port " + p.id + ": MAC " + p.mac.toString() + " is taken on its switch");
    }
    for (const auto& ip : p.ips) {
      if (!t->port_by_ip_.emplace(std::pair{p.switch_key, ip}, key).second) {
        return invalid("port " + p.id + ": address " + ip.toString() + " is taken on its switch");
      }
      for (uint32_t g : p.groups) t->group_addresses_[{g, ip}] = true;
    }
    for (const auto& l : p.local_ips) {
      if (l.local.family != 4 || l.fixed.family != 4 ||
          std::find(p.ips.begin(), p.ips.end(), l.fixed) == p.ips.end()) {
        return invalid("port " + p.id + ": local IP " + l.local.toString() + " -> " +
                       l.fixed.toString() + " is not IPv4 to one of its addresses");
      }
      t->local_ip_ports_[{p.switch_key, l.local}].push_back(key);
    }
    for (size_t n = 0; n < p.listeners.size(); ++n) {
      const auto& l = p.listeners[n];
      if ((l.protocol != 6 && l.protocol != 17) || l.port == 0) {
        return invalid("port " + p.id + ": listener " + l.id + " is not TCP or UDP to a port");
      }
      if (l.members.size() >= 1u << 15) {
        return invalid("port " + p.id + ": listener " + l.id + " has too many members");
      }
      for (const auto& m : l.members) {
        if (m.port == 0) {
          return invalid("port " + p.id + ": listener " + l.id + " has member " +
                         m.address.toString() + " on port 0");
        }
      }
      for (const auto& ip : p.ips) {
        if (!t->balancers_
                 .emplace(std::tuple{p.switch_key, ip, l.protocol, l.port},
                          balancerOf(p, n, ip.family))
                 .second) {
          return invalid("port " + p.id + ": two listeners on " + ip.toString() + " port " +
                         std::to_string(l.port));
        }
        ++t->vips_[ip];
      }
    }
    t->ports_on_[p.switch_key].push_back(key);
  }
  for (const auto& [key, s] : t->switches_) {
    if (s.vni != 0 && !t->switch_by_vni_.emplace(s.vni, key).second) {
      return invalid("two switches have VNI " + std::to_string(s.vni));
    }
  }
  for (const auto& [key, g] : t->groups_) {
    for (const auto& rule : g.rules) {
      if (rule.remote_group && !t->groups_.count(*rule.remote_group)) {
        return invalid("rule " + rule.id + " names unknown remote group " +
                       std::to_string(*rule.remote_group));
      }
    }
  }
  for (const auto& [key, r] : t->routers_) {
    auto claim = [&, key = key, &r = r](uint32_t sw, const MacAddress& mac,
                                        const std::vector<IpAddress>& ips,
                                        int index) -> Result<void> {
      auto [at, fresh] = t->router_by_mac_.emplace(std::pair{sw, mac}, std::pair{key, index});
      // One router port with several addresses (two IPv6 subnets, or IPv4
      // and IPv6 on one port) is one interface per address, one MAC: the
      // first one answers for the MAC.
      bool same_port = !fresh && at->second.first == key && index >= 0 && at->second.second >= 0 &&
                       r.interfaces[static_cast<size_t>(at->second.second)].port_key ==
                           r.interfaces[static_cast<size_t>(index)].port_key;
      if (!fresh && !same_port) {
        return invalid("router " + r.id + ": MAC " + mac.toString() + " is taken on its switch");
      }
      for (const auto& ip : ips) {
        if (!t->router_by_ip_.emplace(std::pair{sw, ip}, std::pair{key, index}).second) {
          return invalid("router " + r.id + ": address " + ip.toString() +
                         " is taken on its switch");
        }
      }
      return ok();
    };
    for (size_t n = 0; n < r.interfaces.size(); ++n) {
      const auto& i = r.interfaces[n];
      if (!t->switches_.count(i.switch_key)) {
        return invalid("router " + r.id + " has an interface on unknown switch " +
                       std::to_string(i.switch_key));
      }
      if (auto c = claim(i.switch_key, i.mac, {i.ip}, static_cast<int>(n)); !c) {
        return std::move(c).error();
      }
    }
    if (r.gateway) {
      if (!t->switches_.count(r.gateway->switch_key)) {
        return invalid("router " + r.id + " has its gateway on unknown switch " +
                       std::to_string(r.gateway->switch_key));
      }
      if (r.gateway->host != 0 && !t->hosts_.count(r.gateway->host)) {
        return invalid("router " + r.id + " has its gateway on unknown host " +
                       std::to_string(r.gateway->host));
      }
      if (auto c = claim(r.gateway->switch_key, r.gateway->mac, r.gateway->ips, -1); !c) {
        return std::move(c).error();
      }
    }
  }
  for (const auto& f : floating_ips_) {
    if (!t->ports_.count(f.port_key) && f.port_key != 0) {
      return invalid("floating IP " + f.id + " is on unknown port " + std::to_string(f.port_key));
    }
    if (f.router_key != 0 && !t->routers_.count(f.router_key)) {
      return invalid("floating IP " + f.id + " names unknown router " +
                     std::to_string(f.router_key));
    }
    if (f.external.family != 4 || (f.port_key != 0 && f.fixed.family != 4)) {
      return invalid("floating IP " + f.id + " is not IPv4 to IPv4");
    }
    for (size_t i = 0; i < f.forwardings.size(); ++i) {
      const PortForwarding& pf = f.forwardings[i];
      if ((pf.protocol != 6 && pf.protocol != 17) || pf.external_min == 0 ||
          pf.external_max < pf.external_min || pf.internal_min == 0 ||
          uint32_t{pf.internal_min} + (pf.external_max - pf.external_min) > 65535 ||
          pf.internal.family != 4 || pf.port_key == 0 || f.port_key != 0) {
        return invalid("floating IP " + f.id + ": a port forwarding is not TCP or UDP between " +
                       "IPv4 ports 1-65535 of an unassociated floating IP");
      }
      t->forwardings_by_port_.emplace(pf.port_key, std::make_pair(t->floating_ips_.size(), i));
    }
    if (!t->floating_by_external_.emplace(f.external, t->floating_ips_.size()).second) {
      return invalid("floating IP " + f.id + ": address " + f.external.toString() + " is taken");
    }
    if (f.port_key != 0) {
      t->floating_by_fixed_[{f.port_key, f.fixed}] = t->floating_ips_.size();
      t->floating_by_router_fixed_[{f.router_key, f.fixed}] = t->floating_ips_.size();
    }
    t->floating_ips_.push_back(f);
  }
  return std::shared_ptr<const Topology>(std::move(t));
}

}  // namespace canopy::datapath::topology
