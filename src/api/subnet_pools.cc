// Subnet allocation from pools and the address scope rules
// (detail/subnet_pools.h).

#include "api/detail/subnet_pools.h"

#include <algorithm>
#include <cmath>

#include "api/detail/rbac.h"
#include "model/subnet_pool.h"

namespace canopy::api::detail {
namespace {

using model::badSubnetsRequest;

Error affinityError() {
  return Error(Errc::InvalidArgument,
               "Subnets of the same address family hosted on the same network must all "
               "participate in the same address scope.",
               "NetworkAddressScopeAffinityError");
}

// Neutron answers 500 here; a pool without room is the pool's state, not a
// server fault: 409.
Error allocationError(const std::string& reason) {
  return Error(Errc::Conflict, "Failed to allocate subnet: " + reason, "SubnetAllocationError");
}

std::string text(const Json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

// The pool's prefix quota in its units (/32s for IPv4, /64s for IPv6).
double quotaUnits(int version, int length) {
  return std::ldexp(1.0, (version == 4 ? 32 : 64) - length);
}

}  // namespace

Result<void> checkPoolScope(const Json& pool, const Transaction& ctx) {
  const Json& scope_id = model::memberAt(pool, "address_scope_id");
  if (!scope_id.is_string()) return ok();
  const Json* scope = ctx.current("address-scopes", scope_id.get<std::string>());
  if (scope == nullptr || !ownedOrShared(*scope, ctx.caller(), ctx.tables())) {
    return Error(Errc::NotFound,
                 "Address scope " + scope_id.get<std::string>() + " could not be found.",
                 "AddressScopeNotFound");
  }
  std::string pool_id = pool.value("id", "");
  if (scope->value("ip_version", int64_t{0}) != pool.value("ip_version", int64_t{0})) {
    return Error(Errc::InvalidArgument,
                 "Illegal subnetpool association: subnetpool " + pool_id +
                     " cannot associate with address scope " + scope_id.get<std::string>() +
                     " because subnetpool ip_version is not " +
                     std::to_string(scope->value("ip_version", int64_t{0})) + ".",
                 "IllegalSubnetPoolIpVersionAssociationToAddressScope");
  }
  // The networks with subnets from this pool hold no other subnet of its version.
  for (const Json* s : ctx.indexed("subnets.subnetpool", "subnets", pool_id)) {
    for (const Json* sibling :
         ctx.indexed("subnets.network", "subnets", s->value("network_id", ""))) {
      if (model::memberAt(*sibling, "ip_version") == model::memberAt(pool, "ip_version") &&
          text(model::memberAt(*sibling, "subnetpool_id")) != pool_id) {
        return affinityError();
      }
    }
  }
  IpSet prefixes = model::poolPrefixes(pool);
  for (const Json* other :
       ctx.indexed("subnetpools.address_scope", "subnetpools", scope_id.get<std::string>())) {
    if (other->value("id", "") == pool_id) continue;
    if (model::poolPrefixes(*other).intersects(prefixes)) {
      return Error(Errc::Conflict,
                   "Failed to associate address scope: subnetpools within an address scope must "
                   "have unique prefixes.",
                   "AddressScopePrefixConflict");
    }
  }
  return ok();
}

Result<void> allocateFromPool(Json& subnet, const Transaction& ctx) {
  Json cidr_given = subnet["cidr"];
  Json prefixlen = subnet["prefixlen"];
  Json pool_id = subnet["subnetpool_id"];
  bool use_default = subnet.value("use_default_subnetpool", false);
  subnet.erase("prefixlen");
  subnet.erase("use_default_subnetpool");
  if (cidr_given.is_string() && !prefixlen.is_null()) {
    return badSubnetsRequest("cidr and prefixlen must not be supplied together");
  }
  std::optional<IpPrefix> cidr;
  if (cidr_given.is_string()) {
    auto c = IpPrefix::parseNetwork(cidr_given.get<std::string>());
    if (!c) return model::invalidInput("cidr", c.error().message());
    cidr = *c;
  }
  int version = cidr ? cidr->version() : static_cast<int>(subnet.value("ip_version", int64_t{4}));
  if (pool_id.is_string() && use_default) {
    return badSubnetsRequest("subnetpool_id and use_default_subnetpool cannot both be specified");
  }
  const Json* pool = nullptr;
  if (use_default) {
    for (const auto& [id, p] : ctx.tables().collection("subnetpools")) {
      if (p.doc.value("is_default", false) && p.doc.value("ip_version", int64_t{0}) == version &&
          ownedOrShared(p.doc, ctx.caller(), ctx.tables())) {
        pool = &p.doc;
        break;
      }
    }
    if (pool == nullptr) {
      return badSubnetsRequest("No default subnetpool found for IPv" + std::to_string(version));
    }
  } else if (pool_id.is_string()) {
    pool = ctx.current("subnetpools", pool_id.get<std::string>());
    if (pool == nullptr || !ownedOrShared(*pool, ctx.caller(), ctx.tables())) {
      return Error(Errc::NotFound,
                   "Subnet pool " + pool_id.get<std::string>() + " could not be found.",
                   "SubnetPoolNotFound");
    }
  }
  subnet["subnetpool_id"] = nullptr;
  if (pool == nullptr) {
    if (!cidr) return badSubnetsRequest("a subnetpool must be specified in the absence of a cidr");
    return ok();
  }
  bool specific = cidr.has_value() || (subnet["gateway_ip"].is_string() &&
                                       subnet["gateway_ip"].get<std::string>() != "auto");
  if (!cidr && !subnet["allocation_pools"].is_null()) {
    return badSubnetsRequest("allocation_pools allowed only for specific subnet requests");
  }
  int pool_version = static_cast<int>(pool->value("ip_version", int64_t{4}));
  if (subnet.value("ip_version", int64_t{0}) != pool_version) {
    return badSubnetsRequest("Cannot allocate IPv" +
                             std::to_string(subnet.value("ip_version", int64_t{0})) +
                             " subnet from IPv" + std::to_string(pool_version) + " subnet pool");
  }
  int length = cidr                    ? cidr->length
               : prefixlen.is_number() ? static_cast<int>(prefixlen.get<int64_t>())
                                       : static_cast<int>(pool->value("default_prefixlen", 0));
  if (specific && !cidr) {
    auto gw = IpAddress::parse(subnet["gateway_ip"].get<std::string>());
    if (!gw) return model::invalidInput("gateway_ip", gw.error().message());
    IpPrefix around{*gw, static_cast<uint8_t>(std::clamp(length, 0, version == 4 ? 32 : 128))};
    cidr = IpPrefix{around.first(), around.length};
  }
  auto max = pool->value("max_prefixlen", int64_t{0});
  auto min = pool->value("min_prefixlen", int64_t{0});
  if (length > max) {
    return Error(Errc::InvalidArgument,
                 "Unable to allocate subnet with prefix length " + std::to_string(length) +
                     ", maximum allowed prefix is " + std::to_string(max) + ".",
                 "MaxPrefixSubnetAllocationError");
  }
  if (length < min) {
    return Error(Errc::InvalidArgument,
                 "Unable to allocate subnet with prefix length " + std::to_string(length) +
                     ", minimum allowed prefix is " + std::to_string(min) + ".",
                 "MinPrefixSubnetAllocationError");
  }
  std::string id = pool->value("id", "");
  IpSet free = model::poolPrefixes(*pool);
  double used = 0;
  for (const Json* s : ctx.indexed("subnets.subnetpool", "subnets", id)) {
    auto c = IpPrefix::parse(s->value("cidr", ""));
    if (!c) continue;
    free.remove(*c);
    if (s->value("project_id", "") == pool->value("project_id", "")) {
      used += quotaUnits(version, c->length);
    }
  }
  if (model::memberAt(*pool, "default_quota").is_number_integer()) {
    auto quota = model::memberAt(*pool, "default_quota").get<int64_t>();
    if (quota > 0 && used + quotaUnits(version, length) > static_cast<double>(quota)) {
      return Error(Errc::Conflict, "Per-tenant subnet pool prefix quota exceeded.",
                   "SubnetPoolQuotaExceeded");
    }
  }
  if (cidr) {
    if (!free.contains(*cidr)) {
      return allocationError(
          "Cannot allocate requested subnet from the available set of prefixes.");
    }
  } else {
    // The smallest free block that holds the request, at its lowest address.
    std::vector<IpPrefix> blocks = free.cidrs();
    std::stable_sort(blocks.begin(), blocks.end(),
                     [](const IpPrefix& a, const IpPrefix& b) { return a.length > b.length; });
    auto fit = std::find_if(blocks.begin(), blocks.end(),
                            [&](const IpPrefix& b) { return b.length <= length; });
    if (fit == blocks.end()) {
      return allocationError("Insufficient prefix space to allocate subnet size /" +
                             std::to_string(length) + ".");
    }
    cidr = IpPrefix{fit->first(), static_cast<uint8_t>(length)};
    subnet["gateway_ip"] = "auto";
  }
  subnet["cidr"] = cidr->toString();
  subnet["subnetpool_id"] = id;
  return ok();
}

Json networkAddressScope(const state::Tables& tables, const std::string& network_id, int version) {
  for (const auto& sid : tables.lookup("subnets.network", network_id)) {
    const state::Document* s = tables.find("subnets", sid);
    if (s == nullptr || s->doc.value("ip_version", int64_t{0}) != version) continue;
    const state::Document* pool =
        tables.find("subnetpools", text(model::memberAt(s->doc, "subnetpool_id")));
    if (pool != nullptr && model::memberAt(pool->doc, "address_scope_id").is_string()) {
      return model::memberAt(pool->doc, "address_scope_id");
    }
  }
  return nullptr;
}

Result<void> checkNetworkPools(const Json& subnet, const Transaction& ctx) {
  std::string network_id = subnet.value("network_id", "");
  int version = static_cast<int>(subnet.value("ip_version", int64_t{4}));
  std::string pool_id = text(subnet["subnetpool_id"]);
  Json network_scope = networkAddressScope(ctx.tables(), network_id, version);
  const Json* pool = pool_id.empty() ? nullptr : ctx.current("subnetpools", pool_id);
  if (pool != nullptr && !network_scope.is_null() &&
      model::memberAt(*pool, "address_scope_id") != network_scope) {
    return affinityError();
  }
  for (const Json* sibling : ctx.indexed("subnets.network", "subnets", network_id)) {
    if (sibling->value("id", "") == subnet.value("id", "") ||
        sibling->value("ip_version", int64_t{0}) != version) {
      continue;
    }
    std::string other = text(model::memberAt(*sibling, "subnetpool_id"));
    bool mixed = pool != nullptr ? other != pool_id && network_scope.is_null() : !other.empty();
    if (mixed) {
      return Error(Errc::InvalidArgument,
                   "Subnets hosted on the same network must be allocated from the same subnet "
                   "pool.",
                   "NetworkSubnetPoolAffinityError");
    }
  }
  return ok();
}

}  // namespace canopy::api::detail
