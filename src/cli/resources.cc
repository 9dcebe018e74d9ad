// The table of resource commands: networks, subnets, ports, routers,
// floating IPs, security groups and their rules, with the openstack
// client's option names and list columns.

#include "cli/output.h"
#include "cli/resource_def.h"

namespace canopy::cli {

namespace {

constexpr unsigned C = kCreate, S = kSet, U = kUnset, L = kList;

// Sets one body attribute (or list filter) through `make`.
Apply setWith(std::string attr, std::function<Result<Json>(Edit&, const std::string&)> make) {
  return [attr, make](Edit& e, const std::vector<std::string>& v) -> Result<void> {
    auto value = make(e, v.back());
    if (!value) return value.error();
    if (e.verb == kList) {
      e.query.emplace_back(attr, value->is_string() ? value->get<std::string>() : value->dump());
    } else {
      e.body[attr] = std::move(*value);
    }
    return ok();
  };
}

Apply resolveInto(std::string attr, const Collection& collection) {
  const Collection* c = &collection;
  return setWith(std::move(attr), [c](Edit& e, const std::string& v) -> Result<Json> {
    auto id = e.client.findId(*c, v);
    if (!id) return id.error();
    return Json(*id);
  });
}

Apply plain(std::string attr) {
  return setWith(std::move(attr), [](Edit&, const std::string& v) -> Result<Json> { return v; });
}

OptionList& common(OptionList& list, bool named) {
  list.text("--description", "description", "a description", C | S);
  if (named) list.text("--name", "name", "a new name (set); only this name (list)", S | L);
  return list.text("--project", "project_id", "the owning project's id (admins)", C | L, 0,
                   "PROJECT_ID");
}

std::string onOff(const Json& item, const char* attr, const char* on, const char* off) {
  return item.value(attr, true) ? on : off;
}

Result<Json> fixedIp(Edit& e, const std::string& text) {
  auto kv = parseKeyValues(text, {"subnet", "ip-address"}, {});
  if (!kv) return kv.error();
  if (kv->empty()) return Error(Errc::InvalidArgument, "--fixed-ip: give subnet= or ip-address=");
  Json ip = Json::object();
  if (kv->contains("subnet")) {
    auto id = e.client.findId(kSubnets, (*kv)["subnet"]);
    if (!id) return id.error();
    ip["subnet_id"] = *id;
  }
  if (kv->contains("ip-address")) ip["ip_address"] = (*kv)["ip-address"];
  return ip;
}

Result<Json> addressPair(Edit&, const std::string& text) {
  auto kv = parseKeyValues(text, {"ip-address", "mac-address"}, {"ip-address"});
  if (!kv) return kv.error();
  Json pair = {{"ip_address", (*kv)["ip-address"]}};
  if (kv->contains("mac-address")) pair["mac_address"] = (*kv)["mac-address"];
  return pair;
}

Result<Json> allocationPool(Edit&, const std::string& text) {
  auto kv = parseKeyValues(text, {"start", "end"}, {"start", "end"});
  if (!kv) return kv.error();
  return Json{{"start", (*kv)["start"]}, {"end", (*kv)["end"]}};
}

Result<Json> routeItem(Edit&, const std::string& text) { return parseRoute(text); }

Result<Json> textItem(Edit&, const std::string& text) { return Json(text); }

Result<Json> groupItem(Edit& e, const std::string& text) {
  auto id = e.client.findId(kSecurityGroups, text);
  if (!id) return id.error();
  return Json(*id);
}

// The router's external_gateway_info being built: from an earlier option of
// this edit, or the router's current gateway network.
Result<Json*> gatewayInfo(Edit& e) {
  Json& gw = e.body["external_gateway_info"];
  if (!gw.is_object()) gw = Json::object();
  if (!gw.contains("network_id")) {
    const Json* current = e.current.is_object() && e.current.contains("external_gateway_info")
                              ? &e.current["external_gateway_info"]
                              : nullptr;
    if (current == nullptr || !current->is_object() || !current->contains("network_id")) {
      return Error(Errc::InvalidArgument,
                   "the router has no external gateway: give --external-gateway NETWORK");
    }
    gw["network_id"] = (*current)["network_id"];
  }
  return &gw;
}

OptionList networkOptions() {
  OptionList o;
  common(o, true)
      .toggle("--enable", "--disable", "admin_state_up", "administratively up (default)",
              "administratively down", C | S)
      .toggle("--share", "--no-share", "shared", "shared with every project",
              "not shared (default)", C | S | L)
      .toggle("--external", "--internal", "router:external",
              "external: for router gateways and floating IPs", "internal (default)", C | S | L)
      .integer("--mtu", "mtu", "MTU of the network", C | S)
      .toggle("--enable-port-security", "--disable-port-security", "port_security_enabled",
              "port security on its ports by default (default)", "no port security by default",
              C | S)
      .text("--provider-network-type", "provider:network_type",
            "flat, vlan, geneve or vxlan (admins)", C | L, 0, "TYPE")
      .text("--provider-physical-network", "provider:physical_network",
            "physical network of a flat or vlan network (admins)", C | L, 0, "PHYSNET")
      .integer("--provider-segment", "provider:segmentation_id", "VLAN id or tunnel id (admins)",
               C | L, "ID");
  return o;
}

OptionList subnetOptions() {
  OptionList o;
  common(o, true)
      .reference("--network", "network_id", kNetworks, "the subnet's network", C | L, C)
      .integer("--ip-version", "ip_version", "4 or 6 (default: that of --subnet-range)", C | L)
      .custom({.flags = "--subnet-range",
               .metavar = "CIDR",
               .help = "the subnet's range, e.g. 10.0.0.0/24",
               .verbs = C | L,
               .required = C,
               .apply = [](Edit& e, const std::vector<std::string>& v) -> Result<void> {
                 if (e.verb == kList) {
                   e.query.emplace_back("cidr", v.back());
                   return ok();
                 }
                 e.body["cidr"] = v.back();
                 if (!e.body.contains("ip_version")) {
                   e.body["ip_version"] = v.back().find(':') == std::string::npos ? 4 : 6;
                 }
                 return ok();
               }})
      .custom({.flags = "--gateway",
               .metavar = "IP|auto|none",
               .help = "gateway address; auto (default) takes the range's first; none for no "
                       "gateway",
               .verbs = C | S,
               .apply = [](Edit& e, const std::vector<std::string>& v) -> Result<void> {
                 if (v.back() == "none") {
                   e.body["gateway_ip"] = nullptr;
                 } else if (v.back() != "auto") {
                   e.body["gateway_ip"] = v.back();
                 }
                 return ok();
               }})
      .toggle("--dhcp", "--no-dhcp", "enable_dhcp", "DHCP on (default)", "DHCP off", C | S)
      .clear("--no-dns-nameservers", "dns_nameservers", "remove every DNS server first", S)
      .items("--dns-nameserver", "dns_nameservers", "IP", "a DNS server for DHCP clients (repeat)",
             C | S | U, textItem)
      .clear("--no-host-route", "host_routes", "remove every host route first", S)
      .items("--host-route", "host_routes", "destination=CIDR,gateway=IP",
             "a route for DHCP clients (repeat)", C | S | U, routeItem)
      .items("--allocation-pool", "allocation_pools", "start=IP,end=IP",
             "addresses to allocate from (repeat)", C | S, allocationPool)
      .text("--ipv6-ra-mode", "ipv6_ra_mode", "slaac, dhcpv6-stateful or dhcpv6-stateless", C, 0,
            "MODE")
      .text("--ipv6-address-mode", "ipv6_address_mode",
            "slaac, dhcpv6-stateful or dhcpv6-stateless", C, 0, "MODE");
  return o;
}

OptionList portOptions() {
  OptionList o;
  common(o, true)
      .reference("--network", "network_id", kNetworks, "the port's network", C | L, C)
      .clear("--no-fixed-ip", "fixed_ips", "remove every address first", S)
      .items("--fixed-ip", "fixed_ips", "subnet=SUBNET,ip-address=IP",
             "an address: a subnet (name or id), an IP, or both (repeat)", C | S | U, fixedIp)
      .clear("--no-security-group", "security_groups", "no security groups (first, with set)",
             C | S)
      .items("--security-group", "security_groups", "GROUP",
             "a security group, by name or id (repeat)", C | S | U, groupItem)
      .text("--host", "binding:host_id", "the host the port is bound to", C | S | L, 0, "HOST")
      .text("--device-id", "device_id", "the device (VM, router) using the port", C | S | L, 0,
            "ID")
      .text("--device-owner", "device_owner", "what the device is, e.g. compute:nova", C | S | L, 0,
            "OWNER")
      .text("--mac-address", "mac_address", "MAC address (default: one is made)", C | L, 0, "MAC")
      .toggle("--enable-port-security", "--disable-port-security", "port_security_enabled",
              "anti-spoofing and security groups (default)", "no port security", C | S)
      .toggle("--enable", "--disable", "admin_state_up", "administratively up (default)",
              "administratively down", C | S)
      .items("--allowed-address", "allowed_address_pairs", "ip-address=IP[,mac-address=MAC]",
             "another address the port may send from (repeat)", C | S | U, addressPair)
      .reference("--router", "device_id", kRouters, "only the ports of this router", L);
  return o;
}

OptionList routerOptions() {
  OptionList o;
  common(o, true)
      .toggle("--enable", "--disable", "admin_state_up", "administratively up (default)",
              "administratively down", C | S)
      .custom({.flags = "--external-gateway",
               .metavar = "NETWORK",
               .help = "the external network of the router's gateway",
               .verbs = C | S,
               .apply = [](Edit& e, const std::vector<std::string>& v) -> Result<void> {
                 auto id = e.client.findId(kNetworks, v.back());
                 if (!id) return id.error();
                 e.body["external_gateway_info"] = {{"network_id", *id}};
                 return ok();
               }})
      .constant("--external-gateway", "external_gateway_info", Json::object(), "remove the gateway",
                U);
  for (bool snat : {true, false}) {
    o.custom({.flags = snat ? "--enable-snat" : "--disable-snat",
              .help = snat ? "SNAT through the gateway (default; admins)"
                           : "no SNAT through the gateway (admins)",
              .verbs = C | S,
              .arity = Arity::Flag,
              .group = "snat",
              .apply = [snat](Edit& e, const std::vector<std::string>&) -> Result<void> {
                auto gw = gatewayInfo(e);
                if (!gw) return gw.error();
                (**gw)["enable_snat"] = snat;
                return ok();
              }});
  }
  o.clear("--no-route", "routes", "remove every extra route first", S)
      .items("--route", "routes", "destination=CIDR,gateway=IP",
             "an extra route (repeat); see also `router add route`", S | U, routeItem);
  return o;
}

OptionList floatingIpOptions() {
  OptionList o;
  common(o, false)
      .reference("--port", "port_id", kPorts, "the port it maps to", C | S | L)
      .constant("--port", "port_id", nullptr, "detach it from its port", U)
      .text("--fixed-ip-address", "fixed_ip_address", "which of the port's addresses", C | S | L, 0,
            "IP")
      .text("--floating-ip-address", "floating_ip_address", "the address wanted", C | L, 0, "IP")
      .reference("--subnet", "subnet_id", kSubnets, "the external subnet to take it from", C)
      .reference("--network", "floating_network_id", kNetworks,
                 "only those of this external network", L)
      .reference("--router", "router_id", kRouters, "only those through this router", L);
  return o;
}

OptionList ruleOptions() {
  OptionList o;
  o.text("--description", "description", "a description", C)
      .text("--project", "project_id", "the owning project's id (admins)", C, 0, "PROJECT_ID")
      .custom({.flags = "--protocol",
               .metavar = "PROTO",
               .help = "tcp, udp, icmp, a protocol number, or any (default)",
               .verbs = C | L,
               .apply = [](Edit& e, const std::vector<std::string>& v) -> Result<void> {
                 if (v.back() == "any") return ok();
                 return plain("protocol")(e, v);
               }})
      .custom({.flags = "--dst-port",
               .metavar = "MIN[:MAX]",
               .help = "destination port or range (tcp, udp)",
               .verbs = C,
               .apply = [](Edit& e, const std::vector<std::string>& v) -> Result<void> {
                 const std::string& text = v.back();
                 size_t colon = text.find(':');
                 std::string low = text.substr(0, colon);
                 std::string high = colon == std::string::npos ? low : text.substr(colon + 1);
                 for (auto [attr, part] :
                      {std::pair{"port_range_min", &low}, std::pair{"port_range_max", &high}}) {
                   auto n = parseInteger("--dst-port", *part);
                   if (!n) return n.error();
                   e.body[attr] = *n;
                 }
                 return ok();
               }})
      .integer("--icmp-type", "port_range_min", "ICMP type (icmp)", C, "TYPE")
      .integer("--icmp-code", "port_range_max", "ICMP code (icmp)", C, "CODE")
      .text("--ethertype", "ethertype", "IPv4 (default) or IPv6", C | L, 0, "IPv4|IPv6")
      .custom({.flags = "--remote-ip",
               .metavar = "CIDR",
               .help = "the peers' addresses",
               .verbs = C | L,
               .apply = [](Edit& e, const std::vector<std::string>& v) -> Result<void> {
                 if (e.verb == kCreate && !e.body.contains("ethertype") &&
                     v.back().find(':') != std::string::npos) {
                   e.body["ethertype"] = "IPv6";
                 }
                 return plain("remote_ip_prefix")(e, v);
               }})
      .custom({.flags = "--remote-group",
               .metavar = "GROUP",
               .help = "the peers: ports in this security group",
               .verbs = C | L,
               .apply = resolveInto("remote_group_id", kSecurityGroups)})
      .constant("--ingress", "direction", "ingress", "traffic to the ports (default)", C | L,
                "direction")
      .constant("--egress", "direction", "egress", "traffic from the ports", C | L, "direction");
  return o;
}

std::string portRange(const Json& rule) {
  const Json& low = rule.value("port_range_min", Json());
  const Json& high = rule.value("port_range_max", Json());
  if (low.is_null() && high.is_null()) return "";
  return formatCell(low) + ":" + formatCell(high);
}

Positional named(const std::string& noun) {
  return {.name = "NAME", .help = "the new " + noun + "'s name", .apply = plain("name")};
}

}  // namespace

const std::vector<ResourceDef>& resourceDefs() {
  static const std::vector<ResourceDef> defs = {
      {.words = {"network"},
       .collection = &kNetworks,
       .about = "Networks: isolated L2 segments, internal or external",
       .columns = {{"ID", "id"}, {"Name", "name"}, {"Subnets", "subnets"}},
       .create_positional = named("network"),
       .options = networkOptions()},
      {.words = {"subnet"},
       .collection = &kSubnets,
       .about = "Subnets: address ranges of a network, with DHCP and a gateway",
       .columns = {{"ID", "id"}, {"Name", "name"}, {"Network", "network_id"}, {"Subnet", "cidr"}},
       .create_positional = named("subnet"),
       .options = subnetOptions()},
      {.words = {"port"},
       .collection = &kPorts,
       .about = "Ports: a device's attachment to a network, with addresses and security groups",
       .columns = {{"ID", "id"},
                   {"Name", "name"},
                   {"MAC Address", "mac_address"},
                   {"Fixed IP Addresses", "fixed_ips"},
                   {"Status", "status"}},
       .create_positional = named("port"),
       .options = portOptions()},
      {.words = {"router"},
       .collection = &kRouters,
       .about = "Routers: between subnets, and to an external network through a gateway",
       .columns = {{"ID", "id"},
                   {"Name", "name"},
                   {"Status", "status"},
                   {"State", "",
                    [](const Json& r) { return onOff(r, "admin_state_up", "UP", "DOWN"); }},
                   {"Project", "project_id"}},
       .create_positional = named("router"),
       .options = routerOptions()},
      {.words = {"floating", "ip"},
       .collection = &kFloatingIps,
       .about = "Floating IPs: external addresses mapped to ports (named by id or address)",
       .columns = {{"ID", "id"},
                   {"Floating IP Address", "floating_ip_address"},
                   {"Fixed IP Address", "fixed_ip_address"},
                   {"Port", "port_id"},
                   {"Floating Network", "floating_network_id"},
                   {"Project", "project_id"}},
       .create_positional = {.name = "NETWORK",
                             .help = "the external network to take the address from",
                             .apply = resolveInto("floating_network_id", kNetworks)},
       .options = floatingIpOptions()},
      {.words = {"security", "group"},
       .collection = &kSecurityGroups,
       .about = "Security groups: stateful firewalls of ports (see `security group rule`)",
       .verbs = kAllVerbs & ~kUnset,
       .columns = {{"ID", "id"},
                   {"Name", "name"},
                   {"Description", "description"},
                   {"Project", "project_id"}},
       .create_positional = named("security group"),
       .options =
           [] {
             OptionList o;
             common(o, true);
             return o;
           }()},
      {.words = {"security", "group", "rule"},
       .collection = &kSecurityGroupRules,
       .about = "Security group rules: what a group allows in (ingress) or out (egress)",
       .verbs = kCreate | kList | kShow | kDelete,
       .columns = {{"ID", "id"},
                   {"IP Protocol", "protocol"},
                   {"Ethertype", "ethertype"},
                   {"IP Range", "remote_ip_prefix"},
                   {"Port Range", "", portRange},
                   {"Direction", "direction"},
                   {"Remote Security Group", "remote_group_id"}},
       .create_defaults = {{"direction", "ingress"}},
       .create_positional = {.name = "GROUP",
                             .help = "the security group the rule belongs to",
                             .apply = resolveInto("security_group_id", kSecurityGroups)},
       .list_positional = {.name = "GROUP",
                           .help = "only the rules of this security group",
                           .apply = resolveInto("security_group_id", kSecurityGroups),
                           .required = false},
       .options = ruleOptions()},
  };
  return defs;
}

}  // namespace canopy::cli
