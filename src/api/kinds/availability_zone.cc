// Availability zones (Neutron's availability_zone, network_availability_zone,
// router_availability_zone): the zones Canopy's agents are in. Every agent
// serves DHCP and routing for its own ports, so each zone is both a
// network and a router zone; a router's zone hints choose where its
// gateway goes (the southbound's scheduling).

#include <set>

#include "api/detail/zones.h"
#include "model/agent.h"

namespace canopy::api {
namespace detail {

std::map<std::string, bool> availabilityZones(const state::Tables& tables) {
  std::map<std::string, bool> zones;  // name -> any agent alive
  for (const auto& [host, d] : tables.collection("agents")) {
    model::Agent a = model::Agent::fromJson(d.doc);
    if (a.is_static) continue;
    zones[a.availability_zone] = zones[a.availability_zone] || a.alive;
  }
  return zones;
}

Result<void> checkZoneHints(const Json& hints, const Transaction& ctx) {
  auto zones = availabilityZones(ctx.tables());
  for (const auto& h : hints) {
    std::string name = h.is_string() ? h.get<std::string>() : h.dump();
    if (!zones.contains(name)) {
      return Error(Errc::NotFound, "AvailabilityZone " + name + " could not be found.",
                   "AvailabilityZoneNotFound");
    }
  }
  return ok();
}

Json hostZones(const state::Tables& tables, const std::vector<std::string>& hosts) {
  std::set<std::string> zones;
  for (const auto& host : hosts) {
    if (const state::Document* d = tables.find("agents", host)) {
      zones.insert(model::Agent::fromJson(d->doc).availability_zone);
    }
  }
  return Json(std::vector<std::string>(zones.begin(), zones.end()));
}

}  // namespace detail

namespace {

using model::AttrType;

constexpr Extension kZoneExtensions[] = {
    {"availability_zone", "Availability Zone", "The availability zone extension."},
    {"availability_zone_filter", "Availability Zone Filter Extension",
     "Add filter parameters to AvailabilityZone resource"},
    {"network_availability_zone", "Network Availability Zone",
     "Availability zone support for network."},
    {"router_availability_zone", "Router Availability Zone",
     "Availability zone support for router (a Canopy router's hints choose where its gateway "
     "goes)."},
};

const model::ResourceSpec& zoneSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "availability_zones",
                          .member = "availability_zone",
                          .type_name = "AvailabilityZone"};
    s.attrs.push_back({.name = "id", .visible = false});  // resource:name, for markers
    s.attrs.push_back({.name = "name"});
    s.attrs.push_back({.name = "resource"});
    s.attrs.push_back({.name = "state"});
    return s;
  }();
  return spec;
}

class AvailabilityZoneKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return zoneSpec(); }
  std::span<const Extension> extensions() const override { return kZoneExtensions; }
  bool visible(const Json&, const Caller&, const state::Tables&) const override { return true; }
  bool derived() const override { return true; }
  std::vector<Json> deriveAll(const state::Tables& tables) const override {
    std::vector<Json> out;
    for (const auto& [name, alive] : detail::availabilityZones(tables)) {
      for (const char* resource : {"network", "router"}) {
        out.push_back({{"id", std::string(resource) + ":" + name},
                       {"name", name},
                       {"resource", resource},
                       {"state", alive ? "available" : "unavailable"}});
      }
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeAvailabilityZoneKind(const model::NetworkConfig&) {
  return std::make_unique<AvailabilityZoneKind>();
}

}  // namespace canopy::api
