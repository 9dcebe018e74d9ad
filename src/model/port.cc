#include "model/port.h"

#include <cctype>

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

// Base64 (RFC 4648, padded): the length of what it decodes to, or nullopt.
std::optional<size_t> base64Length(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '=') {
      if (i + 2 < text.size()) return std::nullopt;  // only the last two
      ++padding;
      continue;
    }
    if (padding != 0) return std::nullopt;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/') return std::nullopt;
  }
  return text.size() / 4 * 3 - padding;
}

// canopy-instance-metadata: what the metadata service answers for the
// port's instance when there is no Nova.
std::optional<std::string> checkInstanceMetadata(const Json& v) {
  constexpr size_t kMaxUserData = 65535;  // Nova's limit
  constexpr size_t kMaxKeys = 16;
  constexpr size_t kMaxKeyLength = 16384;
  for (const auto& [name, value] : v.items()) {
    if (name == "name") {
      if (!value.is_string() || value.get<std::string>().size() > 255) {
        return "instance_metadata name must be a string of at most 255 characters";
      }
    } else if (name == "user_data") {
      if (!value.is_string()) return "instance_metadata user_data must be a base64 string";
      auto length = base64Length(value.get<std::string>());
      if (!length) return "instance_metadata user_data is not valid base64";
      if (*length > kMaxUserData) {
        return "instance_metadata user_data decodes to " + std::to_string(*length) +
               " bytes, more than " + std::to_string(kMaxUserData);
      }
    } else if (name == "public_keys") {
      if (!value.is_object()) {
        return "instance_metadata public_keys must be an object of key names to keys";
      }
      if (value.size() > kMaxKeys) {
        return "instance_metadata has more than " + std::to_string(kMaxKeys) + " public_keys";
      }
      for (const auto& [key_name, key] : value.items()) {
        if (key_name.empty() || key_name.size() > 255 ||
            key_name.find_first_of("/\n\r") != std::string::npos) {
          return "instance_metadata public key name '" + key_name + "' is not valid";
        }
        if (!key.is_string() || key.get<std::string>().empty() ||
            key.get<std::string>().size() > kMaxKeyLength ||
            key.get<std::string>().find_first_of("\n\r") != std::string::npos) {
          return "instance_metadata public key '" + key_name + "' must be one line of at most " +
                 std::to_string(kMaxKeyLength) + " characters";
        }
      }
    } else {
      return "Unrecognized attribute 'instance_metadata." + name +
             "' (known: name, public_keys, user_data)";
    }
  }
  return std::nullopt;
}

}  // namespace

const ResourceSpec& portSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "ports", .member = "port", .type_name = "Port"};
    addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "network_id", .type = AttrType::Uuid, .allow_post = true});
    // trunk-details: on a trunk's parent, the trunk and its subports (written
    // by the trunk).
    a.push_back({.name = "trunk_details", .type = AttrType::Any, .nullable = true});
    // qos: the policy set on the port; none: its network's applies to a VM's port.
    a.push_back({.name = "qos_policy_id",
                 .type = AttrType::Uuid,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true});
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
    a.push_back({.name = "instance_metadata",
                 .type = AttrType::Dict,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json::object(),
                 .check = checkInstanceMetadata});
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

std::string bridgeNameOf(const std::string& port_id) { return "cbr" + port_id.substr(0, 11); }

Json vifDetails(const std::string& port_id) {
  return {{"port_filter", true}, {"connectivity", "l2"}, {"bridge_name", bridgeNameOf(port_id)}};
}

}  // namespace canopy::model
