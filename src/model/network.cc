#include "model/network.h"

#include <charconv>

#include "model/dhcp_options.h"

namespace canopy::model {

int defaultMtu(const NetworkConfig& config, std::string_view network_type) {
  if (network_type.empty()) network_type = config.overlay;
  const int outer_ip = config.overlay_ip_version == 6 ? 20 : 0;  // beyond IPv4's
  if (network_type == "vxlan") return config.physical_mtu - 50 - outer_ip;
  if (network_type == "geneve") return config.physical_mtu - 82 - outer_ip;
  return config.physical_mtu;
}

Result<std::map<std::string, std::vector<std::pair<int64_t, int64_t>>>> parseVlanRanges(
    std::string_view text) {
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> out;
  size_t at = 0;
  while (at <= text.size() && !text.empty()) {
    size_t comma = text.find(',', at);
    std::string_view item =
        text.substr(at, comma == std::string_view::npos ? text.npos : comma - at);
    at = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    auto bad = [&] {
      return Error(Errc::InvalidArgument, "'" + std::string(item) +
                                              "' is not PHYSNET or PHYSNET:FIRST:LAST (VLAN ids 1 "
                                              "to 4094, FIRST <= LAST)");
    };
    size_t c1 = item.find(':');
    std::string physnet(item.substr(0, c1));
    if (physnet.empty()) return bad();
    auto& ranges = out[physnet];
    if (c1 == std::string_view::npos) continue;
    size_t c2 = item.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return bad();
    int64_t lo = 0, hi = 0;
    auto first = item.substr(c1 + 1, c2 - c1 - 1), last = item.substr(c2 + 1);
    auto [p1, e1] = std::from_chars(first.data(), first.data() + first.size(), lo);
    auto [p2, e2] = std::from_chars(last.data(), last.data() + last.size(), hi);
    if (e1 != std::errc() || e2 != std::errc() || p1 != first.data() + first.size() ||
        p2 != last.data() + last.size() || lo < 1 || hi > 4094 || lo > hi) {
      return bad();
    }
    ranges.emplace_back(lo, hi);
  }
  return out;
}

int64_t maxSegmentationId(std::string_view network_type) {
  return network_type == "vlan" ? 4094 : (int64_t{1} << 24) - 1;
}

namespace {

std::optional<std::string> checkMtu(const Json& v) {
  int64_t mtu = v.get<int64_t>();
  if (mtu < 68 || mtu > 65535) {
    return "'" + std::to_string(mtu) + "' is not in range 68 through 65535";
  }
  return std::nullopt;
}

std::optional<std::string> checkNetworkType(const Json& v) {
  const auto& s = v.get_ref<const std::string&>();
  if (s == "geneve" || s == "vxlan" || s == "vlan" || s == "flat") return std::nullopt;
  return "'" + s + "' is not in ['flat', 'geneve', 'vlan', 'vxlan']";
}

}  // namespace

// Attributes common to every resource with Neutron's standard attributes.
void addStandardAttributes(std::vector<AttrSpec>& attrs) {
  attrs.push_back({.name = "id", .type = AttrType::Uuid});
  attrs.push_back(
      {.name = "name", .allow_post = true, .allow_put = true, .default_value = Json("")});
  attrs.push_back(
      {.name = "description", .allow_post = true, .allow_put = true, .default_value = Json("")});
  attrs.push_back({.name = "project_id", .allow_post = true, .default_value = Json("")});
  attrs.push_back({.name = "tenant_id", .allow_post = true, .default_value = Json("")});
  attrs.push_back({.name = "created_at"});
  attrs.push_back({.name = "updated_at"});
  attrs.push_back({.name = "revision_number", .type = AttrType::Int});
  // Set on create too (Neutron's tag-ports-during-bulk-creation and
  // standard-attr-tag), changed through /tags afterwards.
  attrs.push_back({.name = "tags",
                   .type = AttrType::List,
                   .allow_post = true,
                   .default_value = Json::array(),
                   .check = [](const Json& tags) -> std::optional<std::string> {
                     for (size_t i = 0; i < tags.size(); ++i) {
                       const Json& t = tags[i];
                       if (!t.is_string() || t.get_ref<const std::string&>().empty() ||
                           t.get_ref<const std::string&>().size() > 255 ||
                           t.get_ref<const std::string&>().find(',') != std::string::npos) {
                         return "'" + t.dump() + "' is not a valid tag";
                       }
                       for (size_t j = 0; j < i; ++j) {
                         if (tags[j] == t) {
                           return "Duplicate items in the list: '" + t.get<std::string>() + "'";
                         }
                       }
                     }
                     return std::nullopt;
                   }});
}

const ResourceSpec& networkSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "networks", .member = "network", .type_name = "Network"};
    addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "admin_state_up",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(true)});
    a.push_back({.name = "status"});
    a.push_back({.name = "subnets", .type = AttrType::List});
    // The address scope of its subnets' pools, per IP version (derived).
    a.push_back({.name = "ipv4_address_scope", .type = AttrType::Any});
    a.push_back({.name = "ipv6_address_scope", .type = AttrType::Any});
    a.push_back({.name = "shared",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(false),
                 .admin_set_only = true});
    a.push_back({.name = "router:external",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(false),
                 .admin_set_only = true});
    a.push_back({.name = "mtu",
                 .type = AttrType::Int,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = checkMtu});
    // qos: the policy set on it (a port's wins over its network's).
    a.push_back({.name = "qos_policy_id",
                 .type = AttrType::Uuid,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true});
    addAvailabilityZoneAttributes(a);
    // An external network that is the default one (Neutron's
    // auto-allocated-topology attribute): its '*' external policy stays.
    a.push_back({.name = "is_default",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(false),
                 .admin_set_only = true});
    // dns-integration: the domain of its ports' names (DHCP option 15).
    a.push_back({.name = "dns_domain",
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(""),
                 .check = checkDnsDomain});
    a.push_back({.name = "port_security_enabled",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(true)});
    a.push_back({.name = "provider:network_type",
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .admin_only = true,
                 .check = checkNetworkType});
    a.push_back({.name = "provider:physical_network",
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .max_len = 64,
                 .admin_only = true});
    a.push_back({.name = "provider:segmentation_id",
                 .type = AttrType::Int,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .admin_only = true});
    return s;
  }();
  return spec;
}

}  // namespace canopy::model
