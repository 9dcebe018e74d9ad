#include "southbound/objects.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <tuple>

#include "model/agent.h"
#include "model/dhcp_options.h"
#include "southbound/keys.h"
#include "southbound/view.h"

namespace canopy::southbound {
namespace {

using model::Json;
using model::stringAt;

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
  if (text.find('/') != std::string::npos) {
    auto p = IpPrefix::parse(text);
    return p ? std::optional(*p) : std::nullopt;
  }
  auto ip = IpAddress::parse(text);
  if (!ip) return std::nullopt;
  return IpPrefix{*ip, static_cast<uint8_t>(ip->family == 4 ? 32 : 128)};
}

topology::Ipv6Mode ipv6ModeOf(const std::string& mode) {
  if (mode == "slaac") return topology::Ipv6Mode::Slaac;
  if (mode == "dhcpv6-stateless") return topology::Ipv6Mode::Dhcpv6Stateless;
  if (mode == "dhcpv6-stateful") return topology::Ipv6Mode::Dhcpv6Stateful;
  return topology::Ipv6Mode::None;
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

}  // namespace

const Json* docOf(const state::Tables& t, std::string_view collection, std::string_view id) {
  const state::Document* d = t.find(collection, id);
  return d == nullptr ? nullptr : &d->doc;
}

std::vector<const Json*> indexedDocs(const state::Tables& t, std::string_view index,
                                     std::string_view collection, std::string_view key) {
  std::vector<const Json*> out;
  for (const auto& id : t.lookup(index, key)) {
    if (const Json* d = docOf(t, collection, id)) out.push_back(d);
  }
  return out;
}

bool isRouterPort(std::string_view owner) { return owner.rfind("network:router_", 0) == 0; }

bool isExternalNetwork(const state::Tables& t, std::string_view network_id) {
  const Json* n = docOf(t, "networks", network_id);
  return n != nullptr && boolAt(*n, "router:external", false);
}

uint32_t hostKeyOf(const state::Tables& t, std::string_view host) {
  if (host.empty() || docOf(t, kAgentsCollection, host) == nullptr) return 0;
  return keyOf(t, KeyKind::Host, host);
}

std::optional<topology::Host> hostOf(const state::Tables& t, std::string_view host) {
  const Json* a = docOf(t, kAgentsCollection, host);
  uint32_t key = host.empty() ? 0 : keyOf(t, KeyKind::Host, host);
  if (a == nullptr || key == 0) return std::nullopt;
  model::Agent agent = model::Agent::fromJson(*a);
  auto ip = IpAddress::parse(agent.tunnel_ip);
  return topology::Host{.key = key,
                        .name = std::string(host),
                        .tunnel_ip = ip.value_or(IpAddress{}),
                        .geneve = agent.takesGeneve(),
                        .uplinks = agent.physical_networks};
}

std::optional<topology::Switch> switchOf(const state::Tables& t, std::string_view id) {
  const Json* n = docOf(t, "networks", id);
  uint32_t key = keyOf(t, KeyKind::Network, id);
  if (n == nullptr || key == 0) return std::nullopt;
  topology::Switch s{.key = key, .id = std::string(id), .name = stringAt(*n, "name")};
  std::string type = stringAt(*n, "provider:network_type");
  auto seg = n->find("provider:segmentation_id");
  int64_t segment = seg != n->end() && seg->is_number_integer() ? seg->get<int64_t>() : 0;
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
  for (const Json* sub : indexedDocs(t, "subnets.network", "subnets", id)) {
    auto cidr = IpPrefix::parse(stringAt(*sub, "cidr"));
    if (!cidr) continue;
    topology::Subnet out{.id = stringAt(*sub, "id"), .cidr = *cidr};
    if (auto gw = IpAddress::parse(stringAt(*sub, "gateway_ip"))) out.gateway = *gw;
    out.dhcp = boolAt(*sub, "enable_dhcp", true);
    if (out.cidr.address.family == 6) {
      out.ra_mode = ipv6ModeOf(stringAt(*sub, "ipv6_ra_mode"));
      out.address_mode = ipv6ModeOf(stringAt(*sub, "ipv6_address_mode"));
    }
    for (const auto& d : sub->value("dns_nameservers", Json::array())) {
      if (!d.is_string()) continue;
      if (auto ip = IpAddress::parse(d.get<std::string>())) out.dns_servers.push_back(*ip);
    }
    for (const auto& r : sub->value("host_routes", Json::array())) {
      auto dest = IpPrefix::parse(stringAt(r, "destination"));
      auto hop = IpAddress::parse(stringAt(r, "nexthop"));
      if (dest && hop) out.host_routes.push_back({*dest, *hop});
    }
    s.subnets.push_back(std::move(out));
  }
  std::sort(s.subnets.begin(), s.subnets.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return s;
}

namespace {

int64_t intAt(const Json& d, const char* key, int64_t fallback) {
  auto it = d.find(key);
  return it != d.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

// A pool's enabled health monitor as the datapath's agents run it (the
// API's defaults for what is not stored; nullopt for a type it refuses).
std::optional<topology::LbMonitor> monitorOf(const Json& hm) {
  std::string type = stringAt(hm, "type");
  topology::LbMonitor m;
  if (type == "PING") {
    m.type = topology::LbMonitorType::Ping;
  } else if (type == "TCP") {
    m.type = topology::LbMonitorType::Tcp;
  } else if (type == "HTTP") {
    m.type = topology::LbMonitorType::Http;
  } else if (type == "UDP-CONNECT") {
    m.type = topology::LbMonitorType::UdpConnect;
  } else {
    return std::nullopt;
  }
  auto clamp = [](int64_t v, int64_t low, int64_t high) {
    return static_cast<uint32_t>(std::clamp(v, low, high));
  };
  m.delay = clamp(intAt(hm, "delay", 5), 1, 86400);
  m.timeout = clamp(intAt(hm, "timeout", 5), 1, 86400);
  m.max_retries = clamp(intAt(hm, "max_retries", 3), 1, 10);
  m.max_retries_down = clamp(intAt(hm, "max_retries_down", 3), 1, 10);
  if (auto v = stringAt(hm, "http_method"); !v.empty() && v.size() <= 16) m.http_method = v;
  if (auto v = stringAt(hm, "url_path"); !v.empty() && v.size() <= 2048) m.url_path = v;
  if (auto v = stringAt(hm, "expected_codes"); !v.empty() && v.size() <= 64) m.expected_codes = v;
  return m;
}

// What a load balancer's VIP port balances: its enabled listeners of TCP,
// UDP and HTTP (balanced as TCP) with their default pools' members. A
// member is up when enabled and not found down by an enabled health
// monitor; its weight is Octavia's (0 to 256). Stored values the API would
// refuse are skipped.
std::vector<topology::LbListener> listenersOf(const state::Tables& t, std::string_view device) {
  std::vector<topology::LbListener> out;
  if (device.substr(0, 3) != "lb-") return out;
  const Json* lb = docOf(t, "lbaas-loadbalancers", device.substr(3));
  if (lb == nullptr || !boolAt(*lb, "admin_state_up", true)) return out;
  for (const auto& id : t.lookup("lbaas-listeners.loadbalancer", stringAt(*lb, "id"))) {
    const Json* l = docOf(t, "lbaas-listeners", id);
    if (l == nullptr || !boolAt(*l, "admin_state_up", true)) continue;
    std::string protocol = stringAt(*l, "protocol");
    int64_t port = l->value("protocol_port", int64_t{0});
    if ((protocol != "TCP" && protocol != "UDP" && protocol != "HTTP") || port < 1 ||
        port > 65535) {
      continue;
    }
    int64_t limit = intAt(*l, "connection_limit", -1);
    topology::LbListener listener{
        .id = id,
        .protocol = protocol == "UDP" ? uint8_t{17} : uint8_t{6},
        .port = static_cast<uint16_t>(port),
        .connection_limit =
            limit > 0 ? static_cast<uint32_t>(std::min<int64_t>(limit, INT32_MAX)) : 0};
    for (const auto& c : l->value("allowed_cidrs", Json::array())) {
      if (auto prefix = c.is_string() ? parsePrefix(c.get<std::string>()) : std::nullopt) {
        listener.allowed_cidrs.push_back(*prefix);
      }
    }
    std::sort(listener.allowed_cidrs.begin(), listener.allowed_cidrs.end());
    const Json* pool = docOf(t, "lbaas-pools", stringAt(*l, "default_pool_id"));
    if (pool != nullptr && boolAt(*pool, "admin_state_up", true)) {
      std::string algorithm = stringAt(*pool, "lb_algorithm");
      listener.algorithm = algorithm == "LEAST_CONNECTIONS"
                               ? topology::LbAlgorithm::LeastConnections
                           : algorithm == "SOURCE_IP"      ? topology::LbAlgorithm::SourceIp
                           : algorithm == "SOURCE_IP_PORT" ? topology::LbAlgorithm::SourceIpPort
                                                           : topology::LbAlgorithm::RoundRobin;
      auto persistence = pool->find("session_persistence");
      listener.source_ip_persistence = persistence != pool->end() && persistence->is_object() &&
                                       stringAt(*persistence, "type") == "SOURCE_IP";
      bool monitored = false;
      for (const auto& hm : t.lookup("lbaas-healthmonitors.pool", stringAt(*pool, "id"))) {
        const Json* doc = docOf(t, "lbaas-healthmonitors", hm);
        if (doc != nullptr && boolAt(*doc, "admin_state_up", true)) {
          monitored = true;
          listener.monitor = monitorOf(*doc);
        }
      }
      for (const auto& mid : t.lookup("lbaas-members.pool", stringAt(*pool, "id"))) {
        const Json* m = docOf(t, "lbaas-members", mid);
        if (m == nullptr) continue;
        auto address = IpAddress::parse(stringAt(*m, "address"));
        int64_t member_port = m->value("protocol_port", int64_t{0});
        int64_t weight = m->value("weight", int64_t{1});
        if (!address || member_port < 1 || member_port > 65535 || weight < 0 || weight > 256) {
          continue;
        }
        std::string member_port_id = memberPortOf(t, *m);
        listener.members.push_back(
            {.id = mid,
             .port_key = member_port_id.empty() ? 0 : keyOf(t, KeyKind::Port, member_port_id),
             .address = *address,
             .port = static_cast<uint16_t>(member_port),
             .weight = static_cast<uint16_t>(weight),
             .backup = boolAt(*m, "backup", false),
             .up = boolAt(*m, "admin_state_up", true) &&
                   !(monitored && stringAt(*m, "health") == "ERROR")});
      }
      std::sort(listener.members.begin(), listener.members.end(), [](const auto& a, const auto& b) {
        return std::tie(a.address, a.port) < std::tie(b.address, b.port);
      });
    }
    out.push_back(std::move(listener));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.protocol, a.port, a.id) < std::tie(b.protocol, b.port, b.id);
  });
  return out;
}

}  // namespace

std::string memberPortOf(const state::Tables& t, const Json& member) {
  std::string address = stringAt(member, "address");
  auto on = [&](const std::string& network) -> std::string {
    const auto& ids = t.lookup("ports.address", network + " " + address);
    return ids.empty() ? std::string() : *ids.begin();
  };
  if (const Json* subnet = docOf(t, "subnets", stringAt(member, "subnet_id"))) {
    return on(stringAt(*subnet, "network_id"));
  }
  const Json* pool = docOf(t, "lbaas-pools", stringAt(member, "pool_id"));
  const Json* lb = pool == nullptr
                       ? nullptr
                       : docOf(t, "lbaas-loadbalancers", stringAt(*pool, "loadbalancer_id"));
  const Json* vip = lb == nullptr ? nullptr : docOf(t, "ports", stringAt(*lb, "vip_port_id"));
  if (vip == nullptr) return {};
  std::string vip_network = stringAt(*vip, "network_id");
  if (auto port = on(vip_network); !port.empty()) return port;
  for (const auto& router_port : t.lookup("ports.router_network", vip_network)) {
    const Json* rp = docOf(t, "ports", router_port);
    if (rp == nullptr) continue;
    for (const auto& interface : t.lookup("ports.device", stringAt(*rp, "device_id"))) {
      const Json* i = docOf(t, "ports", interface);
      if (i == nullptr) continue;
      if (auto port = on(stringAt(*i, "network_id")); !port.empty()) return port;
    }
  }
  return {};
}

// The QoS policy a port is under: its own, or a VM's port (not the
// network's own: router, DHCP, floating IP) its network's, as Neutron's
// drivers apply them. Rules the datapath does not enforce (minimums, for
// placement) are left out; a limit of 0 kbps is none, as Open vSwitch has it.
topology::PortQos qosOf(const state::Tables& t, const Json& port) {
  topology::PortQos out;
  std::string policy = stringAt(port, "qos_policy_id");
  if (policy.empty() && !stringAt(port, "device_owner").starts_with("network:")) {
    if (const Json* n = docOf(t, "networks", stringAt(port, "network_id"))) {
      policy = stringAt(*n, "qos_policy_id");
    }
  }
  const Json* doc = policy.empty() ? nullptr : docOf(t, "qos-policies", policy);
  if (doc == nullptr) return out;
  for (const auto& rule : doc->value("rules", Json::array())) {
    if (!rule.is_object()) continue;
    std::string type = stringAt(rule, "type");
    auto number = [&](const char* field) -> int64_t {
      auto it = rule.find(field);
      return it != rule.end() && it->is_number_integer() ? it->get<int64_t>() : -1;
    };
    if (type == "bandwidth_limit") {
      int64_t kbps = number("max_kbps"), burst = number("max_burst_kbps");
      if (kbps <= 0 || burst < 0) continue;
      topology::BandwidthLimit limit{static_cast<uint64_t>(kbps), static_cast<uint64_t>(burst)};
      (stringAt(rule, "direction") == "ingress" ? out.ingress : out.egress) = limit;
    } else if (type == "dscp_marking") {
      int64_t mark = number("dscp_mark");
      if (mark >= 0 && mark <= 63) out.dscp = static_cast<uint8_t>(mark);
    }
  }
  return out;
}

// The security-group logging events of a port: its enabled logs' (those
// naming it, one of its groups, or its whole project).
uint8_t logEventsOf(const state::Tables& t, const Json& port) {
  using topology::Port;
  uint8_t bits = 0;
  auto add = [&](const Json& log) {
    if (!boolAt(log, "enabled", true)) return;
    std::string event = stringAt(log, "event");
    const int events = event == "ACCEPT" ? Port::kLogAccept
                       : event == "DROP" ? Port::kLogDrop
                                         : Port::kLogAccept | Port::kLogDrop;
    bits = static_cast<uint8_t>(bits | events);
  };
  std::vector<std::string> groups;
  for (const auto& g : port.value("security_groups", Json::array())) {
    if (g.is_string()) groups.push_back(g.get<std::string>());
  }
  for (const Json* log : indexedDocs(t, "logs.target", "logs", stringAt(port, "id"))) {
    std::string group = stringAt(*log, "resource_id");
    if (group.empty() || std::find(groups.begin(), groups.end(), group) != groups.end()) add(*log);
  }
  for (const auto& g : groups) {
    for (const Json* log : indexedDocs(t, "logs.resource", "logs", g)) {
      if (stringAt(*log, "target_id").empty()) add(*log);
    }
  }
  for (const Json* log :
       indexedDocs(t, "logs.project_wide", "logs", stringAt(port, "project_id"))) {
    add(*log);
  }
  return bits;
}

std::optional<topology::Port> portOf(const state::Tables& t, const Json& p,
                                     const HasSwitch& has_switch,
                                     std::vector<std::string>* groups) {
  std::string id = stringAt(p, "id");
  uint32_t key = keyOf(t, KeyKind::Port, id);
  uint32_t sw = keyOf(t, KeyKind::Network, stringAt(p, "network_id"));
  auto mac = parseMac(stringAt(p, "mac_address"));
  if (key == 0 || sw == 0 || !has_switch(sw) || !mac) return std::nullopt;
  topology::Port out{.key = key, .id = id, .switch_key = sw, .mac = *mac};
  for (const auto& f : p.value("fixed_ips", Json::array())) {
    if (auto ip = IpAddress::parse(stringAt(f, "ip_address"))) out.ips.push_back(*ip);
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
    if (uint32_t gk = keyOf(t, KeyKind::Group, g.get<std::string>())) {
      out.groups.push_back(gk);
      if (groups != nullptr) groups->push_back(g.get<std::string>());
    }
  }
  std::sort(out.groups.begin(), out.groups.end());
  out.host = hostKeyOf(t, stringAt(p, "binding:host_id"));
  out.device_owner = stringAt(p, "device_owner");
  out.name = stringAt(p, "name");
  out.dhcp_host_name = stringAt(p, "dns_name");
  out.dhcp_domain = stringAt(p, "dns_domain");
  for (const auto& o : p.value("extra_dhcp_opts", Json::array())) {
    if (o.value("ip_version", 4) == 6) {
      // DHCPv6's: those it knows (an unknown name is skipped, as stored).
      if (auto v6 = model::encodeDhcpv6Option(stringAt(o, "opt_name"), stringAt(o, "opt_value"))) {
        out.dhcpv6_options.push_back({v6->code, std::move(v6->value)});
      }
      continue;
    }
    if (o.value("ip_version", 4) != 4) continue;
    auto encoded = model::encodeDhcpOption(stringAt(o, "opt_name"), stringAt(o, "opt_value"));
    if (!encoded) continue;  // checked by the API; a bad stored value is skipped
    if (encoded->code == 0) {
      IpAddress next{};
      next.family = 4;
      std::copy(encoded->value.begin(), encoded->value.end(), next.bytes.begin());
      out.dhcp_next_server = next;
    } else {
      out.dhcp_options.push_back({encoded->code, std::move(encoded->value)});
    }
  }
  // Its local IP associations, IPv4 to one of its addresses (the API's
  // checks; a stored value that is not is skipped).
  for (const auto& a : t.lookup("local-ip-associations.port", id)) {
    const Json* doc = docOf(t, "local-ip-associations", a);
    if (doc == nullptr) continue;
    auto local = IpAddress::parse(stringAt(*doc, "local_ip_address"));
    auto fixed = IpAddress::parse(stringAt(*doc, "fixed_ip"));
    if (!local || !fixed || local->family != 4 ||
        std::find(out.ips.begin(), out.ips.end(), *fixed) == out.ips.end()) {
      continue;
    }
    out.local_ips.push_back({*local, *fixed});
  }
  std::sort(out.local_ips.begin(), out.local_ips.end(), [](const auto& a, const auto& b) {
    return std::tie(a.local, a.fixed) < std::tie(b.local, b.fixed);
  });
  if (out.device_owner == "Octavia") out.listeners = listenersOf(t, stringAt(p, "device_id"));
  out.qos = qosOf(t, p);
  out.log_events = logEventsOf(t, p);
  // Trunks: a parent's subports (those with keys), a subport's parent.
  for (const auto& trunk_id : t.lookup("trunks.port", id)) {
    const Json* trunk = docOf(t, "trunks", trunk_id);
    if (trunk == nullptr) continue;
    for (const auto& s : trunk->value("sub_ports", Json::array())) {
      auto vid = s.is_object() ? s.find("segmentation_id") : s.end();
      if (!s.is_object() || vid == s.end() || !vid->is_number_integer() ||
          vid->get<int64_t>() < 1 || vid->get<int64_t>() > 4094) {
        continue;
      }
      if (uint32_t k = keyOf(t, KeyKind::Port, stringAt(s, "port_id"))) {
        out.subports.push_back({static_cast<uint16_t>(vid->get<int64_t>()), k});
      }
    }
  }
  std::sort(out.subports.begin(), out.subports.end(),
            [](const auto& a, const auto& b) { return a.vid < b.vid; });
  for (const auto& trunk_id : t.lookup("trunks.subport", id)) {
    const Json* trunk = docOf(t, "trunks", trunk_id);
    if (trunk == nullptr) continue;
    for (const auto& s : trunk->value("sub_ports", Json::array())) {
      if (!s.is_object() || stringAt(s, "port_id") != id) continue;
      auto vid = s.find("segmentation_id");
      uint32_t parent = keyOf(t, KeyKind::Port, stringAt(*trunk, "port_id"));
      if (vid != s.end() && vid->is_number_integer() && vid->get<int64_t>() >= 1 &&
          vid->get<int64_t>() <= 4094 && parent != 0) {
        out.trunk_parent = parent;
        out.trunk_vid = static_cast<uint16_t>(vid->get<int64_t>());
      }
    }
  }
  return out;
}

std::optional<topology::Router> routerOf(const state::Tables& t, std::string_view id,
                                         const SwitchAt& switches) {
  const Json* r = docOf(t, "routers", id);
  uint32_t key = keyOf(t, KeyKind::Router, id);
  if (r == nullptr || key == 0) return std::nullopt;
  topology::Router out{.key = key, .id = std::string(id), .name = stringAt(*r, "name")};
  std::vector<const Json*> ports = indexedDocs(t, "ports.device", "ports", id);
  std::sort(ports.begin(), ports.end(),
            [](const Json* a, const Json* b) { return stringAt(*a, "id") < stringAt(*b, "id"); });
  for (const Json* p : ports) {
    std::string owner = stringAt(*p, "device_owner");
    uint32_t port_key = keyOf(t, KeyKind::Port, stringAt(*p, "id"));
    uint32_t sw = keyOf(t, KeyKind::Network, stringAt(*p, "network_id"));
    auto mac = parseMac(stringAt(*p, "mac_address"));
    const topology::Switch* s = sw == 0 ? nullptr : switches(sw);
    if (port_key == 0 || s == nullptr || !mac) continue;
    if (owner == "network:router_interface") {
      for (const auto& f : p->value("fixed_ips", Json::array())) {
        auto ip = IpAddress::parse(stringAt(f, "ip_address"));
        if (!ip) continue;
        for (const auto& sub : s->subnets) {
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
        auto ip = IpAddress::parse(stringAt(f, "ip_address"));
        if (!ip) continue;
        gw.ips.push_back(*ip);
        for (const auto& sub : s->subnets) {
          if (sub.id != stringAt(f, "subnet_id") || !sub.gateway) continue;
          auto& hop = ip->family == 6 ? gw.nexthop6 : gw.nexthop;
          if (!hop) hop = sub.gateway;
        }
      }
      auto info = r->find("external_gateway_info");
      gw.snat = info != r->end() && info->is_object() ? boolAt(*info, "enable_snat", true) : true;
      gw.host = hostKeyOf(t, stringAt(*p, "binding:host_id"));
      for (const auto& name : standbyHostsOf(*p)) {
        uint32_t standby = hostKeyOf(t, name);
        if (standby != 0 && standby != gw.host) gw.standbys.push_back(standby);
      }
      snatLeasesOf(t, *p, gw);
      // A gateway on an external network without subnets has no address
      // to route or translate with: the router has no way out yet.
      if (!gw.ips.empty()) out.gateway = std::move(gw);
    }
  }
  for (const auto& route : r->value("routes", Json::array())) {
    auto dest = IpPrefix::parse(stringAt(route, "destination"));
    auto hop = IpAddress::parse(stringAt(route, "nexthop"));
    if (dest && hop) out.routes.push_back({*dest, *hop});
  }
  // Metering labels: its project's and the shared ones, by id.
  std::vector<const Json*> labels =
      indexedDocs(t, "metering-labels.project", "metering-labels", stringAt(*r, "project_id"));
  for (const Json* l : indexedDocs(t, "metering-labels.shared", "metering-labels", "")) {
    if (stringAt(*l, "project_id") != stringAt(*r, "project_id")) labels.push_back(l);
  }
  std::sort(labels.begin(), labels.end(),
            [](const Json* a, const Json* b) { return stringAt(*a, "id") < stringAt(*b, "id"); });
  for (const Json* l : labels) {
    topology::MeterLabel label{.id = stringAt(*l, "id")};
    std::vector<const Json*> rules =
        indexedDocs(t, "metering-label-rules.label", "metering-label-rules", label.id);
    std::sort(rules.begin(), rules.end(),
              [](const Json* a, const Json* b) { return stringAt(*a, "id") < stringAt(*b, "id"); });
    for (const Json* x : rules) {
      topology::MeterRule rule{.ingress = stringAt(*x, "direction") == "ingress",
                               .excluded = boolAt(*x, "excluded", false)};
      auto prefixAt = [&](const char* field) -> std::optional<IpPrefix> {
        auto prefix = IpPrefix::parse(stringAt(*x, field));
        if (!prefix) return std::nullopt;
        return *prefix;
      };
      rule.remote = prefixAt("remote_ip_prefix");
      rule.source = prefixAt("source_ip_prefix");
      rule.destination = prefixAt("destination_ip_prefix");
      // (One without any would count everything: not from the API.)
      if (rule.remote || rule.source || rule.destination) label.rules.push_back(rule);
    }
    out.meters.push_back(std::move(label));
  }
  // Conntrack helpers: those the API allows (ftp over TCP, tftp over UDP).
  for (const auto& h : r->value("conntrack_helpers", Json::array())) {
    if (!h.is_object()) continue;
    std::string helper = stringAt(h, "helper"), protocol = stringAt(h, "protocol");
    auto at = h.find("port");
    int64_t port = at != h.end() && at->is_number_integer() ? at->get<int64_t>() : 0;
    if (port < 1 || port > 65535) continue;
    if (helper == "ftp" && protocol == "tcp") {
      out.helpers.push_back({.protocol = 6,
                             .port = static_cast<uint16_t>(port),
                             .kind = topology::NatHelperKind::Ftp});
    } else if (helper == "tftp" && protocol == "udp") {
      out.helpers.push_back({.protocol = 17,
                             .port = static_cast<uint16_t>(port),
                             .kind = topology::NatHelperKind::Tftp});
    }
  }
  return out;
}

namespace {
std::optional<std::pair<uint16_t, uint16_t>> portRangeOf(const Json& v) {
  if (!v.is_array() || v.size() != 2 || !v[0].is_number_unsigned() || !v[1].is_number_unsigned()) {
    return std::nullopt;
  }
  auto first = v[0].get<uint64_t>(), last = v[1].get<uint64_t>();
  if (first < 1 || first > last || last > 65535) return std::nullopt;
  return std::make_pair(static_cast<uint16_t>(first), static_cast<uint16_t>(last));
}
}  // namespace

std::map<std::string, std::pair<uint16_t, uint16_t>> snatLeaseHostsOf(const Json& port) {
  std::map<std::string, std::pair<uint16_t, uint16_t>> out;
  auto leases = port.find(state::kSnatLeases);
  if (leases == port.end() || !leases->is_object()) return out;
  auto hosts = leases->find("hosts");
  if (hosts == leases->end() || !hosts->is_object()) return out;
  for (const auto& [name, range] : hosts->items()) {
    if (auto r = portRangeOf(range); r && !name.empty()) out[name] = *r;
  }
  return out;
}

void snatLeasesOf(const state::Tables& t, const Json& port, topology::Gateway& gw) {
  auto leases = port.find(state::kSnatLeases);
  if (leases == port.end() || !leases->is_object()) return;
  auto central = portRangeOf(leases->value("central", Json()));
  if (!central) return;  // not one the leader wrote: central SNAT as before
  gw.central_first = central->first;
  gw.central_last = central->second;
  for (const auto& [name, range] : snatLeaseHostsOf(port)) {
    if (uint32_t host = hostKeyOf(t, name); host != 0) {
      gw.leases.push_back({.host = host, .first = range.first, .last = range.second});
    }
  }
}

std::vector<std::string> standbyHostsOf(const Json& port) {
  std::vector<std::string> out;
  auto hosts = port.find(state::kStandbyHosts);
  if (hosts == port.end() || !hosts->is_array()) return out;
  for (const auto& h : *hosts) {
    if (h.is_string() && !h.get_ref<const std::string&>().empty()) out.push_back(h);
  }
  return out;
}

std::vector<std::string> gatewayHostsOf(const state::Tables& t, std::string_view router_id) {
  std::vector<std::string> hosts;
  for (const Json* p : indexedDocs(t, "ports.device", "ports", router_id)) {
    if (stringAt(*p, "device_owner") != "network:router_gateway") continue;
    hosts.clear();
    if (auto h = stringAt(*p, "binding:host_id"); !h.empty()) hosts.push_back(h);
    for (auto& s : standbyHostsOf(*p)) {
      if (std::find(hosts.begin(), hosts.end(), s) == hosts.end()) hosts.push_back(std::move(s));
    }
  }
  return hosts;
}

std::string gatewayHostOf(const state::Tables& t, std::string_view router_id) {
  std::string host;
  for (const Json* p : indexedDocs(t, "ports.device", "ports", router_id)) {
    if (stringAt(*p, "device_owner") == "network:router_gateway") {
      host = stringAt(*p, "binding:host_id");
    }
  }
  return host;
}

std::optional<topology::SecurityGroup> groupOf(const state::Tables& t, std::string_view id,
                                               std::vector<std::string>* remotes) {
  const Json* g = docOf(t, "security-groups", id);
  uint32_t key = keyOf(t, KeyKind::Group, id);
  if (g == nullptr || key == 0) return std::nullopt;
  topology::SecurityGroup out{.key = key,
                              .id = std::string(id),
                              .name = stringAt(*g, "name"),
                              .stateful = boolAt(*g, "stateful", true)};
  std::vector<const Json*> rules =
      indexedDocs(t, "security-group-rules.group", "security-group-rules", id);
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
      uint32_t rk = keyOf(t, KeyKind::Group, remote);
      if (rk == 0 || docOf(t, "security-groups", remote) == nullptr) continue;
      rule.remote_group = rk;
      if (remotes != nullptr) remotes->push_back(remote);
    }
    // A remote address group: one rule per address of the rule's family
    // (none: the rule admits nothing).
    std::string address_group = stringAt(*r, "remote_address_group_id");
    if (!address_group.empty()) {
      const Json* ag = docOf(t, "address-groups", address_group);
      if (ag == nullptr) continue;
      for (const auto& a : ag->value("addresses", Json::array())) {
        auto prefix = IpPrefix::parse(a.is_string() ? a.get<std::string>() : "");
        if (!prefix || prefix->version() != rule.family) continue;
        topology::Rule expanded = rule;
        expanded.remote_prefix = IpPrefix{prefix->first(), prefix->length};
        out.rules.push_back(std::move(expanded));
      }
      continue;
    }
    out.rules.push_back(std::move(rule));
  }
  return out;
}

namespace {
// A port forwarding's port or range ("N:M"), 1-65535.
std::optional<std::pair<uint16_t, uint16_t>> portRange(const Json& pf, const char* single,
                                                       const char* range) {
  auto one = pf.find(single);
  if (one != pf.end() && one->is_number_integer()) {
    int64_t n = one->get<int64_t>();
    if (n < 1 || n > 65535) return std::nullopt;
    return std::make_pair(static_cast<uint16_t>(n), static_cast<uint16_t>(n));
  }
  std::string text = stringAt(pf, range);
  auto colon = text.find(':');
  if (colon == std::string::npos) return std::nullopt;
  int lo = 0, hi = 0;
  auto [p1, e1] = std::from_chars(text.data(), text.data() + colon, lo);
  auto [p2, e2] = std::from_chars(text.data() + colon + 1, text.data() + text.size(), hi);
  if (e1 != std::errc() || e2 != std::errc() || p1 != text.data() + colon ||
      p2 != text.data() + text.size() || lo < 1 || hi > 65535 || hi < lo) {
    return std::nullopt;
  }
  return std::make_pair(static_cast<uint16_t>(lo), static_cast<uint16_t>(hi));
}
}  // namespace

std::optional<topology::FloatingIp> floatingIpOf(const state::Tables& t, const Json& f,
                                                 uint32_t router_key,
                                                 const std::function<bool(uint32_t)>& has_port) {
  uint32_t port = keyOf(t, KeyKind::Port, stringAt(f, "port_id"));
  auto external = IpAddress::parse(stringAt(f, "floating_ip_address"));
  auto fixed = IpAddress::parse(stringAt(f, "fixed_ip_address"));
  if (!external || external->family != 4) return std::nullopt;
  if (port != 0) {
    if (!has_port(port) || !fixed) return std::nullopt;
    return topology::FloatingIp{.id = stringAt(f, "id"),
                                .external = *external,
                                .fixed = *fixed,
                                .port_key = port,
                                .router_key = router_key};
  }
  // Unassociated: its port forwardings to ports in the view (those the
  // API checked; a bad stored one is left out).
  topology::FloatingIp out{
      .id = stringAt(f, "id"), .external = *external, .router_key = router_key};
  for (const auto& pf : f.value("port_forwardings", Json::array())) {
    if (!pf.is_object()) continue;
    uint32_t target = keyOf(t, KeyKind::Port, stringAt(pf, "internal_port_id"));
    auto internal = IpAddress::parse(stringAt(pf, "internal_ip_address"));
    auto ext = portRange(pf, "external_port", "external_port_range");
    auto in = portRange(pf, "internal_port", "internal_port_range");
    std::string protocol = stringAt(pf, "protocol");
    if (target == 0 || !has_port(target) || !internal || internal->family != 4 || !ext || !in ||
        (protocol != "tcp" && protocol != "udp") ||
        in->second - in->first != ext->second - ext->first) {
      continue;
    }
    out.forwardings.push_back({.protocol = static_cast<uint8_t>(protocol == "tcp" ? 6 : 17),
                               .external_min = ext->first,
                               .external_max = ext->second,
                               .internal_min = in->first,
                               .internal = *internal,
                               .port_key = target});
  }
  std::sort(out.forwardings.begin(), out.forwardings.end(), [](const auto& a, const auto& b) {
    return std::tie(a.protocol, a.external_min) < std::tie(b.protocol, b.external_min);
  });
  if (out.forwardings.empty()) return std::nullopt;
  return out;
}

}  // namespace canopy::southbound
