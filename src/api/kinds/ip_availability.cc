// Network IP availability (Neutron's network-ip-availability): for each
// network, how many addresses its subnets' allocation pools hold and how
// many ports use; admin only, derived from networks, subnets and ports.

#include "api/kind.h"
#include "model/subnet.h"

namespace canopy::api {
namespace {

using model::AttrSpec;
using model::AttrType;

constexpr Extension kIpAvailabilityExtensions[] = {
    {"network-ip-availability", "Network IP Availability",
     "Provides IP availability data for each network and subnet."},
};

const model::ResourceSpec& ipAvailabilitySpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "network-ip-availabilities",
                          .member = "network_ip_availability",
                          .plural = "network_ip_availabilities",
                          .type_name = "Network"};
    auto& a = s.attrs;
    a.push_back({.name = "id", .visible = false});  // the network's, for markers
    a.push_back({.name = "network_id"});
    a.push_back({.name = "network_name"});
    a.push_back({.name = "project_id"});
    a.push_back({.name = "tenant_id"});
    a.push_back({.name = "total_ips", .type = AttrType::Any});
    a.push_back({.name = "used_ips", .type = AttrType::Int});
    a.push_back({.name = "subnet_ip_availability", .type = AttrType::List});
    // The versions of the network's subnets: ?ip_version= keeps networks
    // with a subnet of that version.
    a.push_back(
        {.name = "ip_version", .type = AttrType::Int, .visible = false, .filter_only = true});
    return s;
  }();
  return spec;
}

// A count of addresses as JSON: exact up to 2^64 - 1, approximate beyond
// (an IPv6 subnet shorter than /64).
Json addressCount(U128 n) {
  if (n <= UINT64_MAX) return static_cast<uint64_t>(n);
  return static_cast<double>(n);
}

U128 rangeSize(const IpAddress& first, const IpAddress& last) {
  return last < first ? 0 : last.value() - first.value() + 1;
}

class IpAvailabilityKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return ipAvailabilitySpec(); }
  std::span<const Extension> extensions() const override { return kIpAvailabilityExtensions; }

  bool visible(const Json&, const Caller& caller, const state::Tables&) const override {
    return caller.is_admin;
  }

  bool derived() const override { return true; }

  std::vector<Json> deriveAll(const state::Tables& tables) const override {
    std::vector<Json> out;
    for (const auto& [id, n] : tables.collection("networks")) {
      Json subnets = Json::array();
      Json versions = Json::array();
      U128 total = 0;
      int64_t used = 0;
      for (const auto& sid : tables.lookup("subnets.network", id)) {
        const state::Document* s = tables.find("subnets", sid);
        if (s == nullptr) continue;
        U128 subnet_total = 0;
        for (const auto& pool : model::allocationPools(s->doc)) {
          subnet_total += rangeSize(pool.first, pool.last);
        }
        auto subnet_used = static_cast<int64_t>(tables.lookup("ports.subnet", sid).size());
        int64_t version = s->doc.value("ip_version", int64_t{4});
        subnets.push_back({{"subnet_id", sid},
                           {"subnet_name", s->doc.value("name", "")},
                           {"cidr", s->doc.value("cidr", "")},
                           {"ip_version", version},
                           {"used_ips", subnet_used},
                           {"total_ips", addressCount(subnet_total)}});
        if (std::find(versions.begin(), versions.end(), Json(version)) == versions.end()) {
          versions.push_back(version);
        }
        total += subnet_total;
        used += subnet_used;
      }
      std::string project = n.doc.value("project_id", "");
      out.push_back({{"id", id},
                     {"network_id", id},
                     {"network_name", n.doc.value("name", "")},
                     {"project_id", project},
                     {"tenant_id", project},
                     {"total_ips", addressCount(total)},
                     {"used_ips", used},
                     {"subnet_ip_availability", std::move(subnets)},
                     {"ip_version", std::move(versions)}});
    }
    return out;
  }

  Json hiddenValue(const Json& doc, const std::string& attr, const state::Tables&,
                   const Caller&) const override {
    return doc.value(attr, Json());
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeIpAvailabilityKind(const model::NetworkConfig&) {
  return std::make_unique<IpAvailabilityKind>();
}

}  // namespace canopy::api
