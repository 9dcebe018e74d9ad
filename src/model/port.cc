#include "model/port.h"

#include "base/ip.h"
#include "model/dhcp_options.h"
#include "model/ipam.h"

namespace canopy::model {
namespace {

std::optional<std::string> checkFixedIps(const Json& v) {
  for (const auto& f : v) {
    if (!f.is_object() || f.empty()) return "Invalid data format for fixed IP: '" + f.dump() + "'";
    for (auto it = f.begin(); it != f.end(); ++it) {
      if (it.key() == "subnet_id") {
        if (!it.value().is_string() || !isUuid(it.value().get<std::string>()))
          return "'" + it.value().dump() + "' is not a valid UUID";
      } else if (it.key() == "ip_address") {
        if (!it.value().is_string() || !IpAddress::parse(it.value().get<std::string>())) {
          return "'" + it.value().dump() + "' is not a valid IP address";
        }
      } else {
        return "Invalid data format for fixed IP: '" + f.dump() + "'";
      }
    }
  }
  return std::nullopt;
}

std::optional<std::string> checkAddressPairs(const Json& v) {
  for (const auto& p : v) {
    if (!p.is_object() || !p.contains("ip_address")) {
      return "Allowed address pairs must contain ip_address";
    }
    for (auto it = p.begin(); it != p.end(); ++it) {
      if (it.key() == "ip_address") {
        const std::string s = it.value().is_string() ? it.value().get<std::string>() : "";
        if (!IpAddress::parse(s) && !IpPrefix::parseNetwork(s)) {
          return "'" + it.value().dump() + "' is not a valid IP address";
        }
      } else if (it.key() == "mac_address") {
        if (!it.value().is_string() || !parseMac(it.value().get<std::string>())) {
          return "'" + it.value().dump() + "' is not a valid MAC address";
        }
      } else {
        return "Unrecognized attribute(s) '" + it.key() + "'";
      }
    }
  }
  return std::nullopt;
}

std::optional<std::string> checkMac(const Json& v) {
  if (!v.is_string()) return "'" + v.dump() + "' is not a valid MAC address";
  if (auto m = parseMac(v.get<std::string>()); !m) return m.error().message();
  return std::nullopt;
}

std::optional<std::string> checkVnicType(const Json& v) {
  const auto& s = v.get_ref<const std::string&>();
  for (const char* t : {"normal", "direct", "macvtap", "baremetal", "direct-physical",
                        "virtio-forwarder", "smart-nic", "vdpa", "remote-managed"}) {
    if (s == t) return std::nullopt;
  }
  return "'" + s + "' is not a valid vnic_type";
}

}  // namespace

const ResourceSpec& portSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "ports", .member = "port", .type_name = "Port"};
    addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "network_id", .type = AttrType::Uuid, .allow_post = true});
    a.push_back({.name = "admin_state_up",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(true)});
    // Neutron's policy: anyone may choose it on create, only an admin may
    // change it (and not on a bound port).
    a.push_back({.name = "mac_address",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   return v.is_null() ? std::nullopt : checkMac(v);
                 }});
    a.push_back({.name = "fixed_ips",
                 .type = AttrType::List,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   return v.is_null() ? std::nullopt : checkFixedIps(v);
                 }});
    a.push_back(
        {.name = "device_id", .allow_post = true, .allow_put = true, .default_value = Json("")});
    a.push_back(
        {.name = "device_owner", .allow_post = true, .allow_put = true, .default_value = Json("")});
    a.push_back({.name = "status"});
    a.push_back({.name = "allowed_address_pairs",
                 .null_is_empty_list = true,
                 .type = AttrType::List,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json::array(),
                 .check = checkAddressPairs});
    a.push_back({.name = "port_security_enabled",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_null() || v.is_boolean()) return std::nullopt;
                   return "'" + v.dump() + "' is not a valid boolean value";
                 }});
    a.push_back({.name = "security_groups",
                 .null_is_empty_list = true,
                 .type = AttrType::Any,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),  // the project's default group
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_null()) return std::nullopt;
                   if (!v.is_array()) return "'" + v.dump() + "' is not a list";
                   for (size_t i = 0; i < v.size(); ++i) {
                     const Json& g = v[i];
                     if (!g.is_string() || !isUuid(g.get<std::string>())) {
                       return "'" + g.dump() + "' is not a valid UUID";
                     }
                     for (size_t j = 0; j < i; ++j) {
                       if (v[j] == g) {
                         return "Duplicate items in the list: '" + g.get<std::string>() + "'";
                       }
                     }
                   }
                   return std::nullopt;
                 }});
    // dns-integration and dns-domain-ports: the name and domain the DHCP
    // server gives the port (options 12 and 15); dns_assignment is derived.
    a.push_back({.name = "dns_name",
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(""),
                 .check = checkDnsName});
    a.push_back({.name = "dns_domain",
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(""),
                 .check = checkDnsDomain});
    a.push_back({.name = "dns_assignment", .type = AttrType::List});
    // extra_dhcp_opt: options the DHCP server adds for this port.
    a.push_back({.name = "extra_dhcp_opts",
                 .null_is_empty_list = true,
                 .type = AttrType::Any,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json::array(),
                 .check = checkExtraDhcpOpts});
    a.push_back({.name = "binding:host_id",
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(""),
                 .admin_only = true});
    a.push_back({.name = "binding:vnic_type",
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json("normal"),
                 .check = checkVnicType});
    a.push_back({.name = "binding:profile",
                 .type = AttrType::Dict,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json::object(),
                 .admin_only = true});
    a.push_back({.name = "binding:vif_type", .admin_only = true});
    a.push_back({.name = "binding:vif_details", .type = AttrType::Dict, .admin_only = true});
    return s;
  }();
  return spec;
}

}  // namespace canopy::model
