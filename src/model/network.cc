#include "model/network.h"

namespace canopy::model {

int defaultMtu(const NetworkConfig& config, std::string_view network_type) {
  if (network_type.empty()) network_type = config.overlay;
  if (network_type == "vxlan") return config.physical_mtu - 50;
  if (network_type == "geneve") return config.physical_mtu - 82;
  return config.physical_mtu;
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
  attrs.push_back({.name = "tags", .type = AttrType::List});
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
