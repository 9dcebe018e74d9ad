#include "model/router.h"

#include <set>

#include "base/ip.h"

namespace canopy::model {
namespace {

std::optional<std::string> checkGatewayInfo(const Json& v) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_object()) return "'" + v.dump() + "' is not a dictionary";
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& key = it.key();
    const Json& value = it.value();
    if (key == "network_id") {
      if (!value.is_string() || !isUuid(value.get<std::string>())) {
        return "'" + value.dump() + "' is not a valid UUID";
      }
    } else if (key == "enable_snat") {
      if (!value.is_boolean()) return "'" + value.dump() + "' is not a valid boolean value";
    } else if (key == "external_fixed_ips") {
      if (!value.is_array()) return "'" + value.dump() + "' is not a list";
      for (const auto& f : value) {
        if (!f.is_object()) return "Invalid data format for fixed IP: '" + f.dump() + "'";
        for (auto jt = f.begin(); jt != f.end(); ++jt) {
          bool is_string = jt.value().is_string();
          if (jt.key() == "subnet_id" && is_string && isUuid(jt.value().get<std::string>())) {
            continue;
          }
          if (jt.key() == "ip_address" && is_string &&
              IpAddress::parse(jt.value().get<std::string>())) {
            continue;
          }
          return "Invalid data format for fixed IP: '" + f.dump() + "'";
        }
      }
    } else {
      return "Unexpected keys supplied: " + key;
    }
  }
  if (!v.empty() && !v.contains("network_id"))
    return "Validation of dictionary's keys failed. "
           "Expected keys: {'network_id'}";
  return std::nullopt;
}

std::optional<std::string> checkRoutes(const Json& v) {
  if (auto r = normaliseRoutes(v); !r) return r.error().message();
  return std::nullopt;
}

std::optional<std::string> checkFloatingIpAddress(const Json& v) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_string() || !IpAddress::parse(v.get<std::string>())) {
    return "'" + v.dump() + "' is not a valid IP address";
  }
  return std::nullopt;
}

}  // namespace

Result<Json> normaliseRoutes(const Json& routes) {
  if (!routes.is_array()) return badRequest("'" + routes.dump() + "' is not a list");
  Json out = Json::array();
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& r : routes) {
    if (!r.is_object() || r.size() != 2 || !r.contains("destination") || !r.contains("nexthop") ||
        !r["destination"].is_string() || !r["nexthop"].is_string()) {
      return badRequest("Invalid data format for hostroute: '" + r.dump() + "'");
    }
    auto destination = IpPrefix::parseNetwork(r["destination"].get<std::string>());
    if (!destination) return badRequest(destination.error().message());
    auto nexthop = IpAddress::parse(r["nexthop"].get<std::string>());
    if (!nexthop) return badRequest(nexthop.error().message());
    Json route = {{"destination", destination->toString()}, {"nexthop", nexthop->toString()}};
    if (!seen.emplace(route["destination"], route["nexthop"]).second) {
      return badRequest("Duplicate hostroute '" + r.dump() + "'");
    }
    out.push_back(std::move(route));
  }
  return out;
}

const ResourceSpec& routerSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "routers", .member = "router", .type_name = "Router"};
    addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "admin_state_up",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(true)});
    a.push_back({.name = "status"});
    a.push_back({.name = "external_gateway_info",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = checkGatewayInfo});
    // dvr and l3-ha, with Canopy's meaning: every router is distributed
    // (each host routes for its own ports; false is refused), and with ha
    // (the default) its gateway fails over between the gateway hosts of its
    // physical network, without it stays where it was put. Admin-only, as
    // in Neutron's policy.
    for (const char* name : {"distributed", "ha"}) {
      a.push_back({.name = name,
                   .type = AttrType::Any,
                   .allow_post = true,
                   .allow_put = true,
                   .default_value = Json(nullptr),
                   .nullable = true,
                   .admin_only = true,
                   .check = [](const Json& v) -> std::optional<std::string> {
                     if (v.is_null() || v.is_boolean()) return std::nullopt;
                     return "'" + v.dump() + "' is not a valid boolean value";
                   }});
    }
    addAvailabilityZoneAttributes(a);
    // expose-l3-conntrack-helper: set through
    // /v2.0/routers/<id>/conntrack_helpers only.
    a.push_back({.name = "conntrack_helpers", .type = AttrType::Any});
    a.push_back({.name = "routes",
                 .null_is_empty_list = true,
                 .type = AttrType::Any,
                 .allow_put = true,
                 .default_value = Json::array(),
                 .check = checkRoutes});
    return s;
  }();
  return spec;
}

const ResourceSpec& floatingIpSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "floatingips",
                   .member = "floatingip",
                   .type_name = "FloatingIP",
                   .attrs = {}};
    addStandardAttributes(s.attrs);
    // Floating IPs have no name.
    std::erase_if(s.attrs, [](const AttrSpec& attr) { return attr.name == "name"; });
    auto& a = s.attrs;
    a.push_back({.name = "floating_ip_address",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = checkFloatingIpAddress});
    a.push_back({.name = "floating_network_id", .type = AttrType::Uuid, .allow_post = true});
    a.push_back({.name = "subnet_id",
                 .type = AttrType::Uuid,
                 .allow_post = true,
                 .visible = false,
                 .default_value = Json(nullptr),
                 .nullable = true});
    a.push_back({.name = "router_id", .type = AttrType::Uuid});
    a.push_back({.name = "port_id",
                 .type = AttrType::Uuid,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true});
    a.push_back({.name = "fixed_ip_address",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = checkFloatingIpAddress});
    a.push_back({.name = "status"});
    return s;
  }();
  return spec;
}

}  // namespace canopy::model
