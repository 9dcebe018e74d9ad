#include "model/subnet.h"

#include <algorithm>
#include <set>

namespace canopy::model {
namespace {

Error conflict(std::string message, std::string reason) {
  return Error(Errc::Conflict, std::move(message), std::move(reason));
}

std::optional<std::string> checkIpVersion(const Json& v) {
  int64_t n = v.get<int64_t>();
  if (n == 4 || n == 6) return std::nullopt;
  return "'" + std::to_string(n) + "' is not in [4, 6]";
}

std::optional<std::string> checkIpv6Mode(const Json& v) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_string()) return "'" + v.dump() + "' is not a valid string";
  const auto& s = v.get_ref<const std::string&>();
  if (s == "slaac" || s == "dhcpv6-stateful" || s == "dhcpv6-stateless") return std::nullopt;
  return "'" + s + "' is not in ['dhcpv6-stateful', 'dhcpv6-stateless', 'slaac']";
}

std::optional<std::string> checkIpOrNull(const Json& v) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_string() || !IpAddress::parse(v.get<std::string>())) {
    return "'" + (v.is_string() ? v.get<std::string>() : v.dump()) + "' is not a valid IP address";
  }
  return std::nullopt;
}

std::optional<std::string> checkPools(const Json& v) {
  for (const auto& p : v) {
    if (!p.is_object() || !p.contains("start") || !p.contains("end") || p.size() != 2 ||
        !p["start"].is_string() || !p["end"].is_string()) {
      return "Invalid data format for IP pool: '" + p.dump() + "'";
    }
    for (const char* k : {"start", "end"}) {
      if (!IpAddress::parse(p[k].get<std::string>())) {
        return "'" + p[k].get<std::string>() + "' is not a valid IP address";
      }
    }
  }
  return std::nullopt;
}

std::optional<std::string> checkNameservers(const Json& v) {
  std::set<std::string> seen;
  for (const auto& ns : v) {
    if (!ns.is_string() || !IpAddress::parse(ns.get<std::string>())) {
      return "'" + (ns.is_string() ? ns.get<std::string>() : ns.dump()) +
             "' is not a valid nameserver. '" +
             (ns.is_string() ? ns.get<std::string>() : ns.dump()) + "' is not a valid IP address";
    }
    if (!seen.insert(ns.get<std::string>()).second) {
      return "Duplicate nameserver '" + ns.get<std::string>() + "'";
    }
  }
  return std::nullopt;
}

std::optional<std::string> checkHostRoutes(const Json& v) {
  std::set<std::string> seen;
  for (const auto& r : v) {
    if (!r.is_object() || r.size() != 2 || !r.contains("destination") || !r.contains("nexthop") ||
        !r["destination"].is_string() || !r["nexthop"].is_string()) {
      return "Invalid data format for hostroute: '" + r.dump() + "'";
    }
    if (auto c = IpPrefix::parseNetwork(r["destination"].get<std::string>()); !c)
      return c.error().message();
    if (!IpAddress::parse(r["nexthop"].get<std::string>())) {
      return "'" + r["nexthop"].get<std::string>() + "' is not a valid IP address";
    }
    if (!seen.insert(r.dump()).second) return "Duplicate hostroute '" + r.dump() + "'";
  }
  return std::nullopt;
}

std::string rangeText(const IpRange& r) { return r.first.toString() + "-" + r.last.toString(); }

}  // namespace

const ResourceSpec& subnetSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "subnets", .member = "subnet", .type_name = "Subnet"};
    addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "network_id", .type = AttrType::Uuid, .allow_post = true});
    // Its network's, for ?shared= (not shown).
    a.push_back({.name = "shared", .type = AttrType::Bool, .visible = false, .filter_only = true});
    a.push_back(
        {.name = "ip_version", .type = AttrType::Int, .allow_post = true, .check = checkIpVersion});
    // Absent when a pool gives the subnet its CIDR.
    a.push_back({.name = "cidr",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_null() || v.is_string()) return std::nullopt;
                   return "'" + v.dump() + "' is not a valid IP subnet";
                 }});
    a.push_back({.name = "prefixlen",
                 .type = AttrType::Int,
                 .allow_post = true,
                 .visible = false,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_null() || v.get<int64_t>() >= 0) return std::nullopt;
                   return "'" + v.dump() + "' should be non-negative";
                 }});
    a.push_back({.name = "use_default_subnetpool",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .visible = false,
                 .default_value = Json(false)});
    a.push_back({.name = "gateway_ip",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json("auto"),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_string() && v == "auto") return std::nullopt;
                   return checkIpOrNull(v);
                 }});
    a.push_back({.name = "allocation_pools",
                 .type = AttrType::List,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = checkPools});
    a.push_back({.name = "dns_nameservers",
                 .null_is_empty_list = true,
                 .type = AttrType::List,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json::array(),
                 .check = checkNameservers});
    a.push_back({.name = "host_routes",
                 .null_is_empty_list = true,
                 .type = AttrType::List,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json::array(),
                 .check = checkHostRoutes});
    // subnet-service-types: the device owners whose ports take addresses
    // from it (none: every port's).
    a.push_back({.name = "service_types",
                 .null_is_empty_list = true,
                 .type = AttrType::List,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json::array(),
                 .check = [](const Json& types) -> std::optional<std::string> {
                   for (const auto& t : types) {
                     if (!t.is_string()) {
                       return "Subnet service type " + t.dump() + " is not a string.";
                     }
                     const auto& type = t.get_ref<const std::string&>();
                     auto colon = type.find(':');
                     if (colon == 0 || colon == std::string::npos || type.size() > 255) {
                       return "Subnet service type " + type +
                              " does not correspond to a valid device owner.";
                     }
                   }
                   return std::nullopt;
                 }});
    a.push_back({.name = "enable_dhcp",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(true)});
    a.push_back({.name = "ipv6_ra_mode",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = checkIpv6Mode});
    a.push_back({.name = "ipv6_address_mode",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = checkIpv6Mode});
    a.push_back({.name = "subnetpool_id",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_null() || (v.is_string() && isUuid(v.get<std::string>()))) {
                     return std::nullopt;
                   }
                   return "'" + (v.is_string() ? v.get<std::string>() : v.dump()) +
                          "' is not a valid UUID";
                 }});
    return s;
  }();
  return spec;
}

std::vector<IpRange> allocationPools(const Json& subnet) {
  std::vector<IpRange> out;
  auto it = subnet.find("allocation_pools");
  if (it == subnet.end() || !it->is_array()) return out;
  for (const auto& p : *it) {
    auto first = IpAddress::parse(p.value("start", ""));
    auto last = IpAddress::parse(p.value("end", ""));
    if (first && last) out.push_back({*first, *last});
  }
  return out;
}

Result<void> checkSubnetAddressing(const Json& subnet) {
  auto cidr = IpPrefix::parseNetwork(subnet.value("cidr", ""));
  if (!cidr) return invalidInput("cidr", cidr.error().message());
  std::optional<IpAddress> gateway;
  if (subnet["gateway_ip"].is_string()) {
    auto gw = IpAddress::parse(subnet["gateway_ip"].get<std::string>());
    if (!gw) return invalidInput("gateway_ip", gw.error().message());
    if (gw->version() != cidr->version()) {
      return badRequest("Invalid input for operation: gateway_ip " + gw->toString() +
                        " does not match the IP version of " + cidr->toString() + ".");
    }
    gateway = *gw;
  }
  auto pools = allocationPools(subnet);
  std::sort(pools.begin(), pools.end(),
            [](const IpRange& a, const IpRange& b) { return a.first < b.first; });
  bool v4 = cidr->version() == 4 && cidr->length < 31;
  for (size_t i = 0; i < pools.size(); ++i) {
    const IpRange& p = pools[i];
    if (p.first.version() != cidr->version() || p.last.version() != cidr->version() ||
        p.last < p.first) {
      return Error(Errc::InvalidArgument, "The allocation pool " + rangeText(p) + " is not valid.",
                   "InvalidAllocationPool");
    }
    if (!cidr->contains(p.first) || !cidr->contains(p.last) ||
        (v4 && (p.first == cidr->first() || p.last == cidr->last()))) {
      return Error(Errc::InvalidArgument,
                   "The allocation pool " + rangeText(p) + " spans beyond the subnet cidr " +
                       cidr->toString() + ".",
                   "OutOfBoundsAllocationPool");
    }
    if (i > 0 && !(pools[i - 1].last < p.first)) {
      return conflict("Found overlapping allocation pools: " + rangeText(pools[i - 1]) + " and " +
                          rangeText(p) + " for subnet " + cidr->toString() + ".",
                      "OverlappingAllocationPools");
    }
    if (gateway && !(*gateway < p.first) && !(p.last < *gateway)) {
      return conflict(
          "Gateway ip " + gateway->toString() + " conflicts with allocation pool " + rangeText(p),
          "GatewayConflictWithAllocationPools");
    }
  }
  return ok();
}

Result<void> completeNewSubnet(Json& subnet, const std::vector<IpPrefix>& siblings) {
  if (!subnet["cidr"].is_string()) {
    return Error(Errc::InvalidArgument,
                 "Bad subnets request: a subnetpool must be specified in the absence of a cidr.",
                 "BadRequest");
  }
  auto cidr = IpPrefix::parseNetwork(subnet["cidr"].get<std::string>());
  if (!cidr) return invalidInput("cidr", cidr.error().message());
  int version = static_cast<int>(subnet.value("ip_version", int64_t{0}));
  if (version != cidr->version()) {
    return badRequest("Invalid input for operation: ip_version " + std::to_string(version) +
                      " does not match cidr " + cidr->toString() + ".");
  }
  if (cidr->size() < (version == 4 ? 4u : 2u) && subnet["allocation_pools"].is_null()) {
    // /31 and /32 (v4) or /128 (v6) leave no room for a gateway and a host.
    return badRequest("Invalid input for operation: cidr " + cidr->toString() +
                      " is too small for a subnet; give allocation_pools explicitly.");
  }
  for (const IpPrefix& other : siblings) {
    if (other.overlaps(*cidr)) {
      return badRequest(
          "Invalid input for operation: Requested subnet with cidr: " + cidr->toString() +
          " for network: " + subnet.value("network_id", "") + " overlaps with another subnet.");
    }
  }
  for (const char* mode : {"ipv6_ra_mode", "ipv6_address_mode"}) {
    if (!subnet[mode].is_null() && version != 6) {
      return badRequest("Invalid input for operation: " + std::string(mode) + " set to '" +
                        subnet[mode].get<std::string>() + "' with ip_version 4.");
    }
  }
  if (!subnet["ipv6_ra_mode"].is_null() && !subnet["ipv6_address_mode"].is_null() &&
      subnet["ipv6_ra_mode"] != subnet["ipv6_address_mode"]) {
    return badRequest("Invalid input for operation: ipv6_ra_mode set to '" +
                      subnet["ipv6_ra_mode"].get<std::string>() +
                      "' with ipv6_address_mode set to '" +
                      subnet["ipv6_address_mode"].get<std::string>() +
                      "' is not valid. If both attributes are set, they must be the same value.");
  }
  subnet["cidr"] = cidr->toString();
  // Host addresses: v4 skips network and broadcast; v6 skips the subnet-router anycast.
  IpAddress first_host = cidr->first().plus(1);
  IpAddress last_host = version == 4 ? cidr->last().minus(1) : cidr->last();
  if (subnet["gateway_ip"] == "auto") subnet["gateway_ip"] = first_host.toString();
  if (subnet["gateway_ip"].is_string()) {
    auto gw = IpAddress::parse(subnet["gateway_ip"].get<std::string>());
    if (gw) subnet["gateway_ip"] = gw->toString();
  }
  if (subnet["allocation_pools"].is_null()) {
    Json pools = Json::array();
    std::optional<IpAddress> gw;
    if (subnet["gateway_ip"].is_string())
      gw = *IpAddress::parse(subnet["gateway_ip"].get<std::string>());
    auto add = [&](IpAddress a, IpAddress b) {
      if (!(b < a)) pools.push_back({{"start", a.toString()}, {"end", b.toString()}});
    };
    if (gw && cidr->contains(*gw) && !(*gw < first_host) && !(last_host < *gw)) {
      if (first_host < *gw) add(first_host, gw->minus(1));
      if (*gw < last_host) add(gw->plus(1), last_host);
    } else {
      add(first_host, last_host);
    }
    subnet["allocation_pools"] = std::move(pools);
  } else {
    for (auto& p : subnet["allocation_pools"]) {
      p["start"] = IpAddress::parse(p["start"].get<std::string>())->toString();
      p["end"] = IpAddress::parse(p["end"].get<std::string>())->toString();
    }
  }
  return checkSubnetAddressing(subnet);
}

}  // namespace canopy::model
