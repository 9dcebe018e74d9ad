#include "southbound/convert.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

namespace canopy::southbound {
namespace {

using topology::MacAddress;

Error bad(const std::string& what) { return Error(Errc::InvalidArgument, "view refused: " + what); }

// --- to the wire ---

std::string bytesOf(const IpAddress& ip) {
  return ip.family == 4   ? std::string(reinterpret_cast<const char*>(ip.bytes.data()), 4)
         : ip.family == 6 ? std::string(reinterpret_cast<const char*>(ip.bytes.data()), 16)
                          : std::string();
}
std::string bytesOf(const MacAddress& mac) {
  return std::string(reinterpret_cast<const char*>(mac.bytes.data()), 6);
}
void put(pb::Prefix* out, const IpPrefix& p) {
  out->set_address(bytesOf(p.address));
  out->set_length(p.length);
}

void put(pb::Switch* o, const topology::Switch& s) {
  o->set_key(s.key);
  o->set_id(s.id);
  o->set_name(s.name);
  o->set_vni(s.vni);
  o->set_mtu(s.mtu);
  for (const auto& sub : s.subnets) {
    auto* x = o->add_subnets();
    x->set_id(sub.id);
    put(x->mutable_cidr(), sub.cidr);
    if (sub.gateway) x->set_gateway(bytesOf(*sub.gateway));
    x->set_dhcp(sub.dhcp);
    for (const auto& d : sub.dns_servers) x->add_dns_servers(bytesOf(d));
    x->set_ra_mode(static_cast<uint32_t>(sub.ra_mode));
    x->set_address_mode(static_cast<uint32_t>(sub.address_mode));
    for (const auto& r : sub.host_routes) {
      auto* h = x->add_host_routes();
      put(h->mutable_destination(), r.destination);
      h->set_nexthop(bytesOf(r.nexthop));
    }
  }
  o->set_external(s.external);
  o->set_physical_network(s.physical_network);
  o->set_vlan(s.vlan);
  o->set_dns_domain(s.dns_domain);
}

void put(pb::Port* o, const topology::Port& p) {
  o->set_key(p.key);
  o->set_id(p.id);
  o->set_switch_key(p.switch_key);
  o->set_mac(bytesOf(p.mac));
  for (const auto& ip : p.ips) o->add_ips(bytesOf(ip));
  for (const auto& pair : p.allowed_pairs) {
    auto* x = o->add_allowed_pairs();
    x->set_mac(bytesOf(pair.mac));
    put(x->mutable_prefix(), pair.prefix);
  }
  o->set_port_security(p.port_security);
  o->set_admin_up(p.admin_up);
  for (uint32_t g : p.groups) o->add_groups(g);
  o->set_host(p.host);
  o->set_device_owner(p.device_owner);
  o->set_name(p.name);
  o->set_dhcp_host_name(p.dhcp_host_name);
  o->set_dhcp_domain(p.dhcp_domain);
  if (p.dhcp_next_server) o->set_dhcp_next_server(bytesOf(*p.dhcp_next_server));
  for (const auto& option : p.dhcp_options) {
    auto* x = o->add_dhcp_options();
    x->set_code(option.code);
    x->set_value(std::string(option.value.begin(), option.value.end()));
  }
  for (const auto& option : p.dhcpv6_options) {
    auto* x = o->add_dhcpv6_options();
    x->set_code(option.code);
    x->set_value(std::string(option.value.begin(), option.value.end()));
  }
  for (const auto& s : p.subports) {
    auto* x = o->add_subports();
    x->set_vid(s.vid);
    x->set_port(s.port);
  }
  o->set_trunk_parent(p.trunk_parent);
  o->set_trunk_vid(p.trunk_vid);
  o->set_log_events(p.log_events);
  if (!p.qos.empty()) {
    auto* q = o->mutable_qos();
    if (p.qos.egress) {
      q->set_egress_kbps(p.qos.egress->kbps);
      q->set_egress_burst_kbits(p.qos.egress->burst_kbits);
    }
    if (p.qos.ingress) {
      q->set_ingress_kbps(p.qos.ingress->kbps);
      q->set_ingress_burst_kbits(p.qos.ingress->burst_kbits);
    }
    if (p.qos.dscp) q->set_dscp(*p.qos.dscp);
  }
  for (const auto& l : p.local_ips) {
    auto* x = o->add_local_ips();
    x->set_local(bytesOf(l.local));
    x->set_fixed(bytesOf(l.fixed));
  }
  for (const auto& l : p.listeners) {
    auto* x = o->add_listeners();
    x->set_id(l.id);
    x->set_protocol(l.protocol);
    x->set_port(l.port);
    x->set_algorithm(static_cast<pb::LbAlgorithm>(l.algorithm));
    x->set_source_ip_persistence(l.source_ip_persistence);
    x->set_connection_limit(l.connection_limit);
    for (const auto& c : l.allowed_cidrs) put(x->add_allowed_cidrs(), c);
    if (l.monitor) {
      auto* y = x->mutable_monitor();
      y->set_type(static_cast<pb::LbMonitorType>(l.monitor->type));
      y->set_delay(l.monitor->delay);
      y->set_timeout(l.monitor->timeout);
      y->set_max_retries(l.monitor->max_retries);
      y->set_max_retries_down(l.monitor->max_retries_down);
      y->set_http_method(l.monitor->http_method);
      y->set_url_path(l.monitor->url_path);
      y->set_expected_codes(l.monitor->expected_codes);
    }
    for (const auto& m : l.members) {
      auto* y = x->add_members();
      y->set_id(m.id);
      y->set_port_key(m.port_key);
      y->set_address(bytesOf(m.address));
      y->set_port(m.port);
      y->set_weight(m.weight);
      y->set_backup(m.backup);
      y->set_up(m.up);
    }
  }
}

void put(pb::SecurityGroup* o, const topology::SecurityGroup& g) {
  o->set_key(g.key);
  o->set_id(g.id);
  o->set_name(g.name);
  o->set_stateless(!g.stateful);
  for (const auto& r : g.rules) {
    auto* x = o->add_rules();
    x->set_id(r.id);
    x->set_ingress(r.direction == topology::Direction::Ingress);
    x->set_family(r.family);
    if (r.protocol) x->set_protocol(*r.protocol);
    if (r.port_min) x->set_port_min(*r.port_min);
    if (r.port_max) x->set_port_max(*r.port_max);
    if (r.remote_prefix) put(x->mutable_remote_prefix(), *r.remote_prefix);
    if (r.remote_group) x->set_remote_group(*r.remote_group);
  }
}

void put(pb::Router* o, const topology::Router& r) {
  o->set_key(r.key);
  o->set_id(r.id);
  o->set_name(r.name);
  for (const auto& i : r.interfaces) {
    auto* x = o->add_interfaces();
    x->set_port_key(i.port_key);
    x->set_switch_key(i.switch_key);
    x->set_mac(bytesOf(i.mac));
    x->set_ip(bytesOf(i.ip));
    put(x->mutable_subnet(), i.subnet);
  }
  for (const auto& route : r.routes) {
    auto* x = o->add_routes();
    put(x->mutable_destination(), route.destination);
    x->set_nexthop(bytesOf(route.nexthop));
  }
  for (const auto& m : r.meters) {
    auto* x = o->add_meters();
    x->set_id(m.id);
    for (const auto& rule : m.rules) {
      auto* y = x->add_rules();
      y->set_ingress(rule.ingress);
      y->set_excluded(rule.excluded);
      if (rule.remote) put(y->mutable_remote(), *rule.remote);
      if (rule.source) put(y->mutable_source(), *rule.source);
      if (rule.destination) put(y->mutable_destination(), *rule.destination);
    }
  }
  for (const auto& h : r.helpers) {
    auto* x = o->add_helpers();
    x->set_protocol(h.protocol);
    x->set_port(h.port);
    x->set_kind(h.kind == topology::NatHelperKind::Ftp ? pb::NAT_HELPER_FTP : pb::NAT_HELPER_TFTP);
  }
  if (r.gateway) {
    auto* g = o->mutable_gateway();
    g->set_port_key(r.gateway->port_key);
    g->set_switch_key(r.gateway->switch_key);
    g->set_mac(bytesOf(r.gateway->mac));
    for (const auto& ip : r.gateway->ips) g->add_ips(bytesOf(ip));
    g->set_snat(r.gateway->snat);
    g->set_host(r.gateway->host);
    for (uint32_t h : r.gateway->standbys) g->add_standby_hosts(h);
    if (r.gateway->central_first != 1024 || r.gateway->central_last != 65535) {
      g->mutable_central_ports()->set_first(r.gateway->central_first);
      g->mutable_central_ports()->set_last(r.gateway->central_last);
    }
    for (const auto& l : r.gateway->leases) {
      auto* x = g->add_snat_leases();
      x->set_host(l.host);
      x->set_first(l.first);
      x->set_last(l.last);
    }
    if (r.gateway->nexthop) g->set_nexthop(bytesOf(*r.gateway->nexthop));
    if (r.gateway->nexthop6) g->set_nexthop6(bytesOf(*r.gateway->nexthop6));
  }
}

void put(pb::Host* o, const topology::Host& h) {
  o->set_key(h.key);
  o->set_name(h.name);
  o->set_tunnel_ip(bytesOf(h.tunnel_ip));
  o->set_vxlan_only(!h.geneve);
  for (const auto& u : h.uplinks) o->add_physical_networks(u);
}

void put(pb::FloatingIp* o, const topology::FloatingIp& f) {
  o->set_id(f.id);
  o->set_external(bytesOf(f.external));
  if (f.fixed.family != 0) o->set_fixed(bytesOf(f.fixed));
  o->set_port_key(f.port_key);
  o->set_router_key(f.router_key);
  for (const auto& pf : f.forwardings) {
    auto* x = o->add_forwardings();
    x->set_protocol(pf.protocol);
    x->set_external_min(pf.external_min);
    x->set_external_max(pf.external_max);
    x->set_internal_min(pf.internal_min);
    x->set_internal(bytesOf(pf.internal));
    x->set_port_key(pf.port_key);
  }
}

// --- from the wire ---

Result<IpAddress> ip(const std::string& b, const char* what) {
  IpAddress a;
  if (b.size() == 4) {
    a.family = 4;
  } else if (b.size() == 16) {
    a.family = 6;
  } else {
    return bad(std::string(what) + ": an address of " + std::to_string(b.size()) + " bytes");
  }
  std::copy(b.begin(), b.end(), a.bytes.begin());
  return a;
}
Result<MacAddress> mac(const std::string& b, const char* what) {
  if (b.size() != 6)
    return bad(std::string(what) + ": a MAC of " + std::to_string(b.size()) + " bytes");
  MacAddress m;
  std::copy(b.begin(), b.end(), m.bytes.begin());
  return m;
}
Result<IpPrefix> prefix(const pb::Prefix& p, const char* what) {
  auto a = ip(p.address(), what);
  if (!a) return std::move(a).error();
  if (p.length() > (a->family == 4 ? 32u : 128u))
    return bad(std::string(what) + ": prefix too long");
  return IpPrefix{*a, static_cast<uint8_t>(p.length())};
}

#define CANOPY_TRY(var, expr)                      \
  auto var##_r = (expr);                           \
  if (!var##_r) return std::move(var##_r).error(); \
  auto var = *std::move(var##_r)

Result<topology::Switch> from(const pb::Switch& o) {
  topology::Switch s{.key = o.key(), .id = o.id(), .name = o.name(), .vni = o.vni()};
  if (o.mtu() > 65535 || o.vlan() > 4094)
    return bad("switch " + o.id() + ": MTU or VLAN out of range");
  s.mtu = static_cast<uint16_t>(o.mtu());
  for (const auto& x : o.subnets()) {
    CANOPY_TRY(cidr, prefix(x.cidr(), "subnet"));
    topology::Subnet sub{.id = x.id(), .cidr = cidr, .dhcp = x.dhcp()};
    constexpr auto kLastMode = static_cast<uint32_t>(topology::Ipv6Mode::Dhcpv6Stateful);
    if (x.ra_mode() > kLastMode || x.address_mode() > kLastMode) {
      return bad("subnet " + x.id() + ": unknown IPv6 mode");
    }
    sub.ra_mode = static_cast<topology::Ipv6Mode>(x.ra_mode());
    sub.address_mode = static_cast<topology::Ipv6Mode>(x.address_mode());
    if (!x.gateway().empty()) {
      CANOPY_TRY(gw, ip(x.gateway(), "subnet gateway"));
      sub.gateway = gw;
    }
    for (const auto& d : x.dns_servers()) {
      CANOPY_TRY(dns, ip(d, "DNS server"));
      sub.dns_servers.push_back(dns);
    }
    for (const auto& h : x.host_routes()) {
      CANOPY_TRY(dest, prefix(h.destination(), "host route"));
      CANOPY_TRY(hop, ip(h.nexthop(), "host route next hop"));
      sub.host_routes.push_back({dest, hop});
    }
    s.subnets.push_back(std::move(sub));
  }
  s.external = o.external();
  s.physical_network = o.physical_network();
  s.vlan = static_cast<uint16_t>(o.vlan());
  s.dns_domain = o.dns_domain();
  return s;
}

Result<topology::Port> from(const pb::Port& o) {
  CANOPY_TRY(m, mac(o.mac(), "port"));
  topology::Port p{.key = o.key(), .id = o.id(), .switch_key = o.switch_key(), .mac = m};
  for (const auto& b : o.ips()) {
    CANOPY_TRY(a, ip(b, "port address"));
    p.ips.push_back(a);
  }
  for (const auto& x : o.allowed_pairs()) {
    CANOPY_TRY(pm, mac(x.mac(), "allowed pair"));
    CANOPY_TRY(pp, prefix(x.prefix(), "allowed pair"));
    p.allowed_pairs.push_back({pm, pp});
  }
  p.port_security = o.port_security();
  p.admin_up = o.admin_up();
  p.groups.assign(o.groups().begin(), o.groups().end());
  p.host = o.host();
  p.device_owner = o.device_owner();
  p.name = o.name();
  p.dhcp_host_name = o.dhcp_host_name();
  p.dhcp_domain = o.dhcp_domain();
  if (!o.dhcp_next_server().empty()) {
    CANOPY_TRY(next, ip(o.dhcp_next_server(), "DHCP next server"));
    p.dhcp_next_server = next;
  }
  for (const auto& x : o.dhcp_options()) {
    if (x.code() < 1 || x.code() > 254 || x.value().empty() || x.value().size() > 255) {
      return Error(Errc::InvalidArgument, "port " + o.id() + ": DHCP option " +
                                              std::to_string(x.code()) + " out of range or with " +
                                              std::to_string(x.value().size()) + " bytes");
    }
    p.dhcp_options.push_back(
        {static_cast<uint8_t>(x.code()), std::vector<uint8_t>(x.value().begin(), x.value().end())});
  }
  for (const auto& x : o.dhcpv6_options()) {
    if (x.code() < 1 || x.code() > 65535 || x.value().empty() || x.value().size() > 1024) {
      return Error(Errc::InvalidArgument, "port " + o.id() + ": DHCPv6 option " +
                                              std::to_string(x.code()) + " out of range or with " +
                                              std::to_string(x.value().size()) + " bytes");
    }
    p.dhcpv6_options.push_back({static_cast<uint16_t>(x.code()),
                                std::vector<uint8_t>(x.value().begin(), x.value().end())});
  }
  for (const auto& x : o.subports()) {
    if (x.vid() < 1 || x.vid() > 4094 || x.port() == 0) {
      return Error(Errc::InvalidArgument, "port " + o.id() + ": subport VLAN or key out of range");
    }
    p.subports.push_back({static_cast<uint16_t>(x.vid()), x.port()});
  }
  if (o.trunk_parent() != 0 && (o.trunk_vid() < 1 || o.trunk_vid() > 4094)) {
    return Error(Errc::InvalidArgument, "port " + o.id() + ": subport VLAN out of range");
  }
  if (o.log_events() > 3) {
    return Error(Errc::InvalidArgument, "port " + o.id() + ": logged events out of range");
  }
  p.log_events = static_cast<uint8_t>(o.log_events());
  p.trunk_parent = o.trunk_parent();
  p.trunk_vid = static_cast<uint16_t>(o.trunk_parent() != 0 ? o.trunk_vid() : 0);
  if (o.has_qos()) {
    // Neutron's ranges: rates and bursts up to 2^31 - 1, DSCP 0-63.
    const auto& q = o.qos();
    constexpr uint64_t kMax = 2147483647;
    if (q.egress_kbps() > kMax || q.egress_burst_kbits() > kMax || q.ingress_kbps() > kMax ||
        q.ingress_burst_kbits() > kMax || (q.has_dscp() && q.dscp() > 63)) {
      return Error(Errc::InvalidArgument,
                   "port " + o.id() + ": QoS rate, burst or DSCP out of range");
    }
    if (q.egress_kbps() != 0) p.qos.egress = {q.egress_kbps(), q.egress_burst_kbits()};
    if (q.ingress_kbps() != 0) p.qos.ingress = {q.ingress_kbps(), q.ingress_burst_kbits()};
    if (q.has_dscp()) p.qos.dscp = static_cast<uint8_t>(q.dscp());
  }
  for (const auto& x : o.local_ips()) {
    CANOPY_TRY(local, ip(x.local(), "local IP"));
    CANOPY_TRY(fixed, ip(x.fixed(), "local IP's fixed address"));
    p.local_ips.push_back({local, fixed});
  }
  for (const auto& x : o.listeners()) {
    const std::string what = "port " + o.id() + ": listener " + x.id();
    if ((x.protocol() != 6 && x.protocol() != 17) || x.port() < 1 || x.port() > 65535 ||
        x.algorithm() < pb::LB_ROUND_ROBIN || x.algorithm() > pb::LB_SOURCE_IP_PORT) {
      return bad(what + ": protocol, port or algorithm");
    }
    topology::LbListener l{.id = x.id(),
                           .protocol = static_cast<uint8_t>(x.protocol()),
                           .port = static_cast<uint16_t>(x.port()),
                           .algorithm = static_cast<topology::LbAlgorithm>(x.algorithm()),
                           .source_ip_persistence = x.source_ip_persistence(),
                           .connection_limit = x.connection_limit()};
    for (const auto& c : x.allowed_cidrs()) {
      CANOPY_TRY(cidr, prefix(c, "listener allowed CIDR"));
      l.allowed_cidrs.push_back(cidr);
    }
    if (x.has_monitor()) {
      const auto& y = x.monitor();
      if (y.type() < pb::LB_MONITOR_PING || y.type() > pb::LB_MONITOR_UDP_CONNECT ||
          y.delay() < 1 || y.delay() > 86400 || y.timeout() < 1 || y.timeout() > 86400 ||
          y.max_retries() < 1 || y.max_retries() > 10 || y.max_retries_down() < 1 ||
          y.max_retries_down() > 10 || y.http_method().size() > 16 || y.url_path().size() > 2048 ||
          y.expected_codes().size() > 64) {
        return bad(what + ": health monitor out of range");
      }
      l.monitor = topology::LbMonitor{.type = static_cast<topology::LbMonitorType>(y.type()),
                                      .delay = y.delay(),
                                      .timeout = y.timeout(),
                                      .max_retries = y.max_retries(),
                                      .max_retries_down = y.max_retries_down(),
                                      .http_method = y.http_method(),
                                      .url_path = y.url_path(),
                                      .expected_codes = y.expected_codes()};
    }
    for (const auto& y : x.members()) {
      CANOPY_TRY(address, ip(y.address(), "listener member"));
      if (y.port() < 1 || y.port() > 65535 || y.weight() > 256) {
        return bad(what + ": member port or weight");
      }
      l.members.push_back({.id = y.id(),
                           .port_key = y.port_key(),
                           .address = address,
                           .port = static_cast<uint16_t>(y.port()),
                           .weight = static_cast<uint16_t>(y.weight()),
                           .backup = y.backup(),
                           .up = y.up()});
    }
    p.listeners.push_back(std::move(l));
  }
  return p;
}

Result<topology::SecurityGroup> from(const pb::SecurityGroup& o) {
  topology::SecurityGroup g{
      .key = o.key(), .id = o.id(), .name = o.name(), .stateful = !o.stateless()};
  for (const auto& x : o.rules()) {
    topology::Rule r{.id = x.id()};
    r.direction = x.ingress() ? topology::Direction::Ingress : topology::Direction::Egress;
    if (x.family() != 4 && x.family() != 6) return bad("rule " + x.id() + ": family");
    r.family = static_cast<uint8_t>(x.family());
    if (x.has_protocol()) {
      if (x.protocol() > 255) return bad("rule " + x.id() + ": protocol");
      r.protocol = static_cast<uint8_t>(x.protocol());
    }
    if (x.has_port_min()) {
      if (x.port_min() > 65535) return bad("rule " + x.id() + ": port");
      r.port_min = static_cast<uint16_t>(x.port_min());
    }
    if (x.has_port_max()) {
      if (x.port_max() > 65535) return bad("rule " + x.id() + ": port");
      r.port_max = static_cast<uint16_t>(x.port_max());
    }
    if (x.has_remote_prefix()) {
      CANOPY_TRY(rp, prefix(x.remote_prefix(), "rule remote prefix"));
      r.remote_prefix = rp;
    }
    if (x.has_remote_group()) r.remote_group = x.remote_group();
    g.rules.push_back(std::move(r));
  }
  return g;
}

Result<topology::Router> from(const pb::Router& o) {
  topology::Router r{.key = o.key(), .id = o.id(), .name = o.name()};
  for (const auto& x : o.interfaces()) {
    CANOPY_TRY(m, mac(x.mac(), "router interface"));
    CANOPY_TRY(a, ip(x.ip(), "router interface"));
    CANOPY_TRY(s, prefix(x.subnet(), "router interface subnet"));
    r.interfaces.push_back(
        {.port_key = x.port_key(), .switch_key = x.switch_key(), .mac = m, .ip = a, .subnet = s});
  }
  for (const auto& x : o.routes()) {
    CANOPY_TRY(d, prefix(x.destination(), "route"));
    CANOPY_TRY(h, ip(x.nexthop(), "route next hop"));
    r.routes.push_back({d, h});
  }
  for (const auto& x : o.meters()) {
    topology::MeterLabel m{.id = x.id()};
    for (const auto& y : x.rules()) {
      topology::MeterRule rule{.ingress = y.ingress(), .excluded = y.excluded()};
      if (y.has_remote()) {
        CANOPY_TRY(p, prefix(y.remote(), "metering rule"));
        rule.remote = p;
      }
      if (y.has_source()) {
        CANOPY_TRY(p, prefix(y.source(), "metering rule"));
        rule.source = p;
      }
      if (y.has_destination()) {
        CANOPY_TRY(p, prefix(y.destination(), "metering rule"));
        rule.destination = p;
      }
      m.rules.push_back(rule);
    }
    r.meters.push_back(std::move(m));
  }
  for (const auto& x : o.helpers()) {
    if (x.protocol() > 255 || x.port() == 0 || x.port() > 65535) {
      return Error(Errc::InvalidArgument, "router " + o.id() + ": bad NAT helper protocol or port");
    }
    topology::NatHelper h{.protocol = static_cast<uint8_t>(x.protocol()),
                          .port = static_cast<uint16_t>(x.port())};
    if (x.kind() == pb::NAT_HELPER_FTP) {
      h.kind = topology::NatHelperKind::Ftp;
    } else if (x.kind() == pb::NAT_HELPER_TFTP) {
      h.kind = topology::NatHelperKind::Tftp;
    } else {
      continue;  // a kind this agent does not know
    }
    r.helpers.push_back(h);
  }
  if (o.has_gateway()) {
    const auto& x = o.gateway();
    CANOPY_TRY(m, mac(x.mac(), "gateway"));
    topology::Gateway g{.port_key = x.port_key(), .switch_key = x.switch_key(), .mac = m};
    for (const auto& b : x.ips()) {
      CANOPY_TRY(a, ip(b, "gateway address"));
      g.ips.push_back(a);
    }
    g.snat = x.snat();
    g.host = x.host();
    g.standbys.assign(x.standby_hosts().begin(), x.standby_hosts().end());
    auto range = [](uint32_t first, uint32_t last) {
      return first >= 1 && first <= last && last <= 65535;
    };
    if (x.has_central_ports()) {
      if (!range(x.central_ports().first(), x.central_ports().last())) {
        return bad("gateway: central SNAT ports out of range");
      }
      g.central_first = static_cast<uint16_t>(x.central_ports().first());
      g.central_last = static_cast<uint16_t>(x.central_ports().last());
    }
    for (const auto& l : x.snat_leases()) {
      if (l.host() == 0 || !range(l.first(), l.last())) {
        return bad("gateway: SNAT lease out of range");
      }
      g.leases.push_back({.host = l.host(),
                          .first = static_cast<uint16_t>(l.first()),
                          .last = static_cast<uint16_t>(l.last())});
    }
    if (!x.nexthop().empty()) {
      CANOPY_TRY(h, ip(x.nexthop(), "gateway next hop"));
      g.nexthop = h;
    }
    if (!x.nexthop6().empty()) {
      CANOPY_TRY(h, ip(x.nexthop6(), "gateway IPv6 next hop"));
      g.nexthop6 = h;
    }
    r.gateway = std::move(g);
  }
  return r;
}

Result<topology::Host> from(const pb::Host& o) {
  CANOPY_TRY(a, ip(o.tunnel_ip(), "host tunnel address"));
  return topology::Host{.key = o.key(),
                        .name = o.name(),
                        .tunnel_ip = a,
                        .geneve = !o.vxlan_only(),
                        .uplinks = {o.physical_networks().begin(), o.physical_networks().end()}};
}

Result<topology::FloatingIp> from(const pb::FloatingIp& o) {
  CANOPY_TRY(e, ip(o.external(), "floating IP"));
  IpAddress f{};
  if (!o.fixed().empty() || o.port_key() != 0) {
    CANOPY_TRY(fixed, ip(o.fixed(), "floating IP fixed address"));
    f = fixed;
  }
  topology::FloatingIp out{.id = o.id(),
                           .external = e,
                           .fixed = f,
                           .port_key = o.port_key(),
                           .router_key = o.router_key()};
  for (const auto& x : o.forwardings()) {
    if ((x.protocol() != 6 && x.protocol() != 17) || x.external_min() < 1 ||
        x.external_max() > 65535 || x.external_max() < x.external_min() || x.internal_min() < 1 ||
        x.internal_min() + (x.external_max() - x.external_min()) > 65535) {
      return Error(Errc::InvalidArgument,
                   "floating IP " + o.id() + ": port forwarding protocol or ports out of range");
    }
    CANOPY_TRY(internal, ip(x.internal(), "port forwarding's internal address"));
    out.forwardings.push_back({.protocol = static_cast<uint8_t>(x.protocol()),
                               .external_min = static_cast<uint16_t>(x.external_min()),
                               .external_max = static_cast<uint16_t>(x.external_max()),
                               .internal_min = static_cast<uint16_t>(x.internal_min()),
                               .internal = internal,
                               .port_key = x.port_key()});
  }
  return out;
}

#undef CANOPY_TRY

// Every item of one kind, converted (the first bad one fails them all).
template <typename Value, typename Items>
Result<std::vector<Value>> fromAll(const Items& items) {
  std::vector<Value> out;
  out.reserve(static_cast<size_t>(items.size()));
  for (const auto& item : items) {
    auto value = from(item);
    if (!value) return std::move(value).error();
    if constexpr (!std::is_same_v<Value, topology::FloatingIp>) {
      if (value->key == 0) return bad("an object with key 0");
    }
    out.push_back(*std::move(value));
  }
  return out;
}

// Applies removals and upserts of one kind onto `into`.
template <typename Map, typename Removed>
void merge(Map& into, std::vector<typename Map::mapped_type>& values, const Removed& removed) {
  for (const auto& k : removed) into.erase(k);
  for (auto& v : values) {
    if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
      into[v.id] = std::move(v);
    } else {
      into[v.key] = std::move(v);
    }
  }
}

template <typename Map, typename Add, typename Remove>
void diff(const Map& before, const Map& after, Add&& add, Remove&& remove) {
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    if (it == before.end() || !(it->second == v)) add(v);
  }
  for (const auto& [k, v] : before) {
    if (!after.count(k)) remove(k);
  }
}

}  // namespace

namespace {

// FNV-1a of a message's deterministic serialization: the same object gives
// the same digest in every process.
uint64_t digestOf(const google::protobuf::Message& m) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  uint64_t h = 14695981039346656037ull;
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ull;
  }
  return h;
}

template <typename Map, typename Digests, typename Put>
void digestAll(const Map& objects, Digests* out, Put&& put_one) {
  for (const auto& [k, v] : objects) (*out)[k] = digestOf(put_one(v));
}

template <typename Map, typename Digests, typename Keys, typename Put>
void differ(const Map& objects, const Digests& held, Keys& keys, Put&& put_one) {
  for (const auto& [k, v] : objects) {
    auto it = held.find(k);
    if (it == held.end() || it->second != digestOf(put_one(v))) keys.insert(k);
  }
  for (const auto& [k, d] : held) {
    if (!objects.count(k)) keys.insert(k);
  }
}

template <typename T, typename V>
T wire(const V& v) {
  T m;
  put(&m, v);
  return m;
}

}  // namespace

pb::ViewDigest digest(const HostView& view) {
  pb::ViewDigest d;
  d.set_local_host(view.local_host);
  digestAll(view.switches, d.mutable_switches(), wire<pb::Switch, topology::Switch>);
  digestAll(view.ports, d.mutable_ports(), wire<pb::Port, topology::Port>);
  digestAll(view.routers, d.mutable_routers(), wire<pb::Router, topology::Router>);
  digestAll(view.groups, d.mutable_groups(), wire<pb::SecurityGroup, topology::SecurityGroup>);
  digestAll(view.hosts, d.mutable_hosts(), wire<pb::Host, topology::Host>);
  digestAll(view.floating_ips, d.mutable_floating_ips(),
            wire<pb::FloatingIp, topology::FloatingIp>);
  return d;
}

ViewKeys differences(const HostView& view, const pb::ViewDigest& held) {
  ViewKeys keys;
  differ(view.switches, held.switches(), keys.switches, wire<pb::Switch, topology::Switch>);
  differ(view.ports, held.ports(), keys.ports, wire<pb::Port, topology::Port>);
  differ(view.routers, held.routers(), keys.routers, wire<pb::Router, topology::Router>);
  differ(view.groups, held.groups(), keys.groups, wire<pb::SecurityGroup, topology::SecurityGroup>);
  differ(view.hosts, held.hosts(), keys.hosts, wire<pb::Host, topology::Host>);
  differ(view.floating_ips, held.floating_ips(), keys.floating_ips,
         wire<pb::FloatingIp, topology::FloatingIp>);
  return keys;
}

pb::View toSnapshot(const HostView& view, uint64_t version) {
  return toDelta(HostView{}, view, version, 0);
}

pb::View toDelta(const HostView& before, const HostView& after, uint64_t version,
                 uint64_t base_version) {
  pb::View m;
  m.set_version(version);
  m.set_base_version(base_version);
  m.set_local_host(after.local_host);
  diff(
      before.switches, after.switches, [&](const auto& v) { put(m.add_switches(), v); },
      [&](uint32_t k) { m.add_removed_switches(k); });
  diff(
      before.ports, after.ports, [&](const auto& v) { put(m.add_ports(), v); },
      [&](uint32_t k) { m.add_removed_ports(k); });
  diff(
      before.routers, after.routers, [&](const auto& v) { put(m.add_routers(), v); },
      [&](uint32_t k) { m.add_removed_routers(k); });
  diff(
      before.groups, after.groups, [&](const auto& v) { put(m.add_groups(), v); },
      [&](uint32_t k) { m.add_removed_groups(k); });
  diff(
      before.hosts, after.hosts, [&](const auto& v) { put(m.add_hosts(), v); },
      [&](uint32_t k) { m.add_removed_hosts(k); });
  diff(
      before.floating_ips, after.floating_ips, [&](const auto& v) { put(m.add_floating_ips(), v); },
      [&](const std::string& k) { m.add_removed_floating_ips(k); });
  return m;
}

pb::View toDelta(const HostView& view, const ViewKeys& changed, uint64_t version,
                 uint64_t base_version) {
  pb::View m;
  m.set_version(version);
  m.set_base_version(base_version);
  m.set_local_host(view.local_host);
  auto each = [](const auto& keys, const auto& objects, auto&& add, auto&& remove) {
    for (const auto& k : keys) {
      auto it = objects.find(k);
      if (it != objects.end()) {
        add(it->second);
      } else {
        remove(k);
      }
    }
  };
  each(
      changed.switches, view.switches, [&](const auto& v) { put(m.add_switches(), v); },
      [&](uint32_t k) { m.add_removed_switches(k); });
  each(
      changed.ports, view.ports, [&](const auto& v) { put(m.add_ports(), v); },
      [&](uint32_t k) { m.add_removed_ports(k); });
  each(
      changed.routers, view.routers, [&](const auto& v) { put(m.add_routers(), v); },
      [&](uint32_t k) { m.add_removed_routers(k); });
  each(
      changed.groups, view.groups, [&](const auto& v) { put(m.add_groups(), v); },
      [&](uint32_t k) { m.add_removed_groups(k); });
  each(
      changed.hosts, view.hosts, [&](const auto& v) { put(m.add_hosts(), v); },
      [&](uint32_t k) { m.add_removed_hosts(k); });
  each(
      changed.floating_ips, view.floating_ips, [&](const auto& v) { put(m.add_floating_ips(), v); },
      [&](const std::string& k) { m.add_removed_floating_ips(k); });
  return m;
}

bool isEmptyDelta(const pb::View& d) {
  return d.switches_size() + d.ports_size() + d.routers_size() + d.groups_size() + d.hosts_size() +
             d.floating_ips_size() + d.removed_switches_size() + d.removed_ports_size() +
             d.removed_routers_size() + d.removed_groups_size() + d.removed_hosts_size() +
             d.removed_floating_ips_size() ==
         0;
}

Result<void> apply(HostView& view, const pb::View& m) {
  // Everything is converted and checked first, so that a bad message
  // changes nothing; then applied in place.
  auto switches = fromAll<topology::Switch>(m.switches());
  if (!switches) return std::move(switches).error();
  auto ports = fromAll<topology::Port>(m.ports());
  if (!ports) return std::move(ports).error();
  auto routers = fromAll<topology::Router>(m.routers());
  if (!routers) return std::move(routers).error();
  auto groups = fromAll<topology::SecurityGroup>(m.groups());
  if (!groups) return std::move(groups).error();
  auto hosts = fromAll<topology::Host>(m.hosts());
  if (!hosts) return std::move(hosts).error();
  auto floating_ips = fromAll<topology::FloatingIp>(m.floating_ips());
  if (!floating_ips) return std::move(floating_ips).error();
  if (m.base_version() == 0) view = HostView{};
  view.local_host = m.local_host();
  merge(view.switches, *switches, m.removed_switches());
  merge(view.ports, *ports, m.removed_ports());
  merge(view.routers, *routers, m.removed_routers());
  merge(view.groups, *groups, m.removed_groups());
  merge(view.hosts, *hosts, m.removed_hosts());
  merge(view.floating_ips, *floating_ips, m.removed_floating_ips());
  return ok();
}

}  // namespace canopy::southbound
