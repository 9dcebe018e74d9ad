#include "model/subnet_pool.h"

namespace canopy::model {
namespace {

std::optional<std::string> checkNonNegative(const Json& v) {
  if (v.is_null()) return std::nullopt;
  if (v.get<int64_t>() < 0) return "'" + v.dump() + "' should be non-negative";
  return std::nullopt;
}

std::optional<std::string> checkUuidOrNull(const Json& v) {
  if (v.is_null() || (v.is_string() && isUuid(v.get<std::string>()))) return std::nullopt;
  return "'" + (v.is_string() ? v.get<std::string>() : v.dump()) + "' is not a valid UUID";
}

AttrSpec prefixLength(const char* name) {
  return {.name = name,
          .type = AttrType::Int,
          .allow_post = true,
          .allow_put = true,
          .default_value = Json(nullptr),
          .nullable = true,
          .check = checkNonNegative};
}

Error illegalBounds(const char* type, int64_t length, const char* base_type, int64_t base) {
  return Error(Errc::InvalidArgument,
               "Illegal prefix bounds: " + std::string(type) + "=" + std::to_string(length) + ", " +
                   base_type + "=" + std::to_string(base) + ".",
               "IllegalSubnetPoolPrefixBounds");
}

}  // namespace

const ResourceSpec& addressScopeSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "address-scopes",
                   .member = "address_scope",
                   .plural = "address_scopes",
                   .type_name = "AddressScope"};
    auto& a = s.attrs;
    a.push_back({.name = "id", .type = AttrType::Uuid});
    a.push_back({.name = "name", .allow_post = true, .allow_put = true, .default_value = Json("")});
    a.push_back({.name = "project_id", .allow_post = true, .default_value = Json("")});
    a.push_back({.name = "tenant_id", .allow_post = true, .default_value = Json("")});
    a.push_back({.name = "shared",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(false),
                 .admin_set_only = true});
    a.push_back({.name = "ip_version",
                 .type = AttrType::Int,
                 .allow_post = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v == 4 || v == 6) return std::nullopt;
                   return v.dump() + " is not in valid_values";
                 }});
    return s;
  }();
  return spec;
}

const ResourceSpec& subnetPoolSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "subnetpools", .member = "subnetpool", .type_name = "SubnetPool"};
    addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    for (auto& attr : a) {
      // A pool's name is required and not blank.
      if (attr.name == "name") {
        attr.default_value.reset();
        attr.check = [](const Json& v) -> std::optional<std::string> {
          if (v.get<std::string>().empty()) return "'' Blank strings are not permitted";
          return std::nullopt;
        };
      }
    }
    a.push_back({.name = "prefixes",
                 .type = AttrType::List,
                 .allow_post = true,
                 .allow_put = true,
                 .check = checkSubnetList});
    a.push_back({.name = "ip_version", .type = AttrType::Int});
    a.push_back(prefixLength("default_prefixlen"));
    a.push_back(prefixLength("min_prefixlen"));
    a.push_back(prefixLength("max_prefixlen"));
    a.push_back(prefixLength("default_quota"));
    a.push_back({.name = "is_default",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(false),
                 .admin_set_only = true});
    a.push_back({.name = "shared",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .default_value = Json(false),
                 .admin_set_only = true});
    a.push_back({.name = "address_scope_id",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = checkUuidOrNull});
    return s;
  }();
  return spec;
}

IpSet poolPrefixes(const Json& pool) {
  IpSet set(static_cast<int>(pool.value("ip_version", int64_t{4})));
  if (auto it = pool.find("prefixes"); it != pool.end() && it->is_array()) {
    for (const auto& p : *it) {
      if (auto prefix = IpPrefix::parse(p.is_string() ? p.get<std::string>() : "")) {
        set.add(IpPrefix{prefix->first(), prefix->length});
      }
    }
  }
  return set;
}

Result<void> completeSubnetPool(Json& pool) {
  const Json& given = pool["prefixes"];
  if (!given.is_array() || given.empty()) {
    return Error(Errc::InvalidArgument, "Empty subnet pool prefix list.",
                 "EmptySubnetPoolPrefixList");
  }
  int version = 0;
  for (const auto& p : given) {
    auto prefix = IpPrefix::parse(p.get<std::string>());
    if (!prefix) return invalidInput("prefixes", prefix.error().message());
    if (version != 0 && prefix->version() != version) {
      return Error(Errc::InvalidArgument, "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
                   "PrefixVersionMismatch");
    }
    version = prefix->version();
  }
  pool["ip_version"] = version;
  Json merged = Json::array();
  for (const auto& p : poolPrefixes(pool).cidrs()) merged.push_back(p.toString());
  pool["prefixes"] = std::move(merged);

  const int64_t bits = version == 4 ? 32 : 128;
  if (pool["min_prefixlen"].is_null()) pool["min_prefixlen"] = version == 4 ? 8 : 64;
  if (pool["max_prefixlen"].is_null()) pool["max_prefixlen"] = bits;
  if (pool["default_prefixlen"].is_null()) pool["default_prefixlen"] = pool["min_prefixlen"];
  auto min = pool["min_prefixlen"].get<int64_t>();
  auto max = pool["max_prefixlen"].get<int64_t>();
  auto def = pool["default_prefixlen"].get<int64_t>();
  if (min > max) return illegalBounds("min_prefixlen", min, "max_prefixlen", max);
  if (max > bits) return illegalBounds("max_prefixlen", max, "ip_version_max", bits);
  if (def < min) return illegalBounds("default_prefixlen", def, "min_prefixlen", min);
  if (def > max) return illegalBounds("default_prefixlen", def, "max_prefixlen", max);
  return ok();
}

Error badSubnetsRequest(std::string_view what) {
  return Error(Errc::InvalidArgument, "Bad subnets request: " + std::string(what) + ".",
               "BadRequest");
}

}  // namespace canopy::model
