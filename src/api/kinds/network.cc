// Networks: segments (provider attributes or a tunnel id from the range),
// MTUs, the subnets that go with them.

#include "model/network.h"

#include <algorithm>

#include "api/detail/qos.h"
#include "api/detail/rbac.h"
#include "api/detail/segment_ranges.h"
#include "api/detail/segments.h"
#include "api/detail/subnet_pools.h"
#include "api/detail/zones.h"
#include "api/kind.h"
#include "model/router.h"
#include "model/subnet.h"

namespace canopy::api {
namespace {

using model::badRequest;

constexpr Extension kNetworkExtensions[] = {
    {"external-net", "Neutron external network",
     "Adds external network attribute to network resource."},
    {"net-mtu", "Network MTU", "Provides MTU attribute for a network resource."},
    {"net-mtu-writable", "Network MTU (writable)",
     "Provides a writable MTU attribute for a network resource."},
    {"provider", "Provider Network", "Expose mapping of virtual networks to physical networks"},
};

class NetworkKind final : public ResourceKind {
 public:
  std::span<const Extension> extensions() const override { return kNetworkExtensions; }
  explicit NetworkKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return model::networkSpec(); }

  // Its own, shared with the caller's project or everyone, or external to it.
  bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const override {
    return detail::ownedOrShared(doc, caller, tables) ||
           detail::externalTo(doc, caller.project_id, tables);
  }

  void present(Json& view, const Json& doc, const state::Tables& tables,
               const Caller& caller) const override {
    std::string id = doc.value("id", "");
    Json subnets = Json::array();
    for (const auto& sid : tables.lookup("subnets.network", id)) subnets.push_back(sid);
    view["subnets"] = std::move(subnets);
    view["shared"] = detail::sharedWith(doc, caller.project_id, tables);
    view["ipv4_address_scope"] = detail::networkAddressScope(tables, id, 4);
    view["ipv6_address_scope"] = detail::networkAddressScope(tables, id, 6);
    // Its zones: those of the hosts its ports are bound to.
    std::vector<std::string> hosts;
    for (const auto& port_id : tables.lookup("ports.network", id)) {
      if (const state::Document* p = tables.find("ports", port_id)) {
        std::string host = p->doc.value("binding:host_id", "");
        if (!host.empty()) hosts.push_back(std::move(host));
      }
    }
    view["availability_zones"] = detail::hostZones(tables, hosts);
  }
  bool derivesViews() const override { return true; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    doc["status"] = "ACTIVE";
    if (auto r = detail::checkZoneHints(doc["availability_zone_hints"], ctx); !r) return r;
    if (auto r = detail::checkQosPolicy(doc, nullptr, ctx, true); !r) return r;
    if (auto r = assignSegment(doc, ctx); !r) return r;
    detail::addSegment(ctx, doc);
    if (doc.value("shared", false)) {
      detail::addWildcardPolicy(ctx, "network", doc, detail::kAccessShared);
    }
    if (doc.value("router:external", false)) {
      detail::addWildcardPolicy(ctx, "network", doc, detail::kAccessExternal);
    }
    return checkMtu(doc);
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (auto r = detail::checkQosPolicy(doc, &before, ctx, true); !r) return r;
    bool shared = doc.value("shared", false), external = doc.value("router:external", false);
    if (shared && !before.value("shared", false)) {
      detail::addWildcardPolicy(ctx, "network", doc, detail::kAccessShared);
    } else if (!shared && before.value("shared", false)) {
      if (auto r = checkUnshare(doc, ctx); !r) return r;
      detail::removeWildcardPolicy(ctx, doc, detail::kAccessShared);
    }
    if (external && !before.value("router:external", false)) {
      detail::addWildcardPolicy(ctx, "network", doc, detail::kAccessExternal);
    } else if (!external && before.value("router:external", false)) {
      std::string id = doc.value("id", "");
      for (const Json* p : ctx.indexed("ports.network", "ports", id)) {
        if (p->value("device_owner", "") == model::kOwnerRouterGateway) {
          return Error(Errc::Conflict,
                       "External network " + id +
                           " cannot be updated to be made non-external, since it has existing "
                           "gateway ports.",
                       "ExternalNetworkInUse");
        }
      }
      for (const Json* p : detail::rbacPolicies(ctx.tables(), id)) {
        if (p->value("action", "") == detail::kAccessExternal) detail::removePolicy(ctx, *p);
      }
    }
    return checkMtu(doc);
  }

  // Subnets go with their network (Neutron deletes them when no port uses them).
  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    // As Neutron: an external network's floating IPs that no port uses go
    // with it; an associated one keeps it.
    std::vector<Json> free_ports;
    for (const Json* port : ctx.indexed("ports.network", "ports", id)) {
      if (port->value("device_owner", "") != model::kOwnerFloatingIp) continue;
      const Json* fip = ctx.current("floatingips", port->value("device_id", ""));
      if (fip != nullptr && !fip->value("port_id", Json()).is_null()) continue;
      free_ports.push_back(*port);
    }
    for (const Json& port : free_ports) {
      std::string fip_id = port.value("device_id", "");
      if (const state::Document* f = ctx.find("floatingips", fip_id)) {
        ctx.guard("floatingips", fip_id, f->mod_revision);
        ctx.remove("floatingips", fip_id);
      }
      removePort(port, ctx);
    }
    auto in_use = ctx.indexed("ports.network", "ports", id);
    std::erase_if(in_use, [&](const Json* p) {
      return std::any_of(free_ports.begin(), free_ports.end(),
                         [&](const Json& f) { return f["id"] == (*p)["id"]; });
    });
    if (!in_use.empty()) {
      return Error(Errc::Conflict,
                   "Unable to complete operation on network " + id +
                       ". There are one or more ports still in use on the network.",
                   "NetworkInUse");
    }
    for (const auto& sid : ctx.tables().lookup("subnets.network", id)) {
      const state::Document* d = ctx.find("subnets", sid);
      if (d == nullptr) continue;
      ctx.guard("subnets", sid, d->mod_revision);
      ctx.remove("subnets", sid);
    }
    ctx.release(segmentClaim(doc));
    detail::removeSegments(ctx, id);
    detail::removePolicies(ctx, id);
    return ok();
  }

 private:
  // Unsharing: every project but the owner with ports (other than the
  // network's own) or subnets on it needs a policy of its own.
  static Result<void> checkUnshare(const Json& doc, const Transaction& ctx) {
    std::string id = doc.value("id", ""), owner = doc.value("project_id", "");
    auto covered = [&](const std::string& project) {
      if (project == owner) return true;
      for (const Json* p : detail::rbacPolicies(ctx.tables(), id)) {
        if (p->value("action", "") == detail::kAccessShared &&
            p->value("target_tenant", "") == project) {
          return true;
        }
      }
      return false;
    };
    std::vector<const Json*> users = ctx.indexed("subnets.network", "subnets", id);
    for (const Json* p : ctx.indexed("ports.network", "ports", id)) {
      if (!p->value("device_owner", "").starts_with("network:")) users.push_back(p);
    }
    for (const Json* u : users) {
      if (!covered(u->value("project_id", ""))) {
        return Error(Errc::Conflict,
                     "Unable to reconfigure sharing settings for network " + doc.value("name", "") +
                         ". Multiple tenants are using it.",
                     "InvalidSharedSetting");
      }
    }
    return ok();
  }

  Result<void> checkMtu(Json& doc) const {
    int max = model::defaultMtu(config_, model::stringAt(doc, "provider:network_type"));
    if (doc["mtu"].is_null()) doc["mtu"] = max;
    if (doc["mtu"].get<int64_t>() > max) {
      return model::badRequest(
          "Invalid input for operation: Requested MTU is too big, maximum is " +
          std::to_string(max) + ".");
    }
    return ok();
  }

  static std::string segmentClaim(const Json& doc) {
    return std::string(state::kPrefix) + "claims/segment/" +
           model::stringAt(doc, "provider:network_type") + "/" +
           model::stringAt(doc, "provider:physical_network") + "/" +
           std::to_string(doc["provider:segmentation_id"].is_number_integer()
                              ? doc["provider:segmentation_id"].get<int64_t>()
                              : 0);
  }

  // The network's segment: provider attributes an admin gave, checked and
  // free, or a tunnel id allocated from the configured range.
  Result<void> assignSegment(Json& doc, Transaction& ctx) const {
    auto invalid = [](const std::string& what) {
      return model::badRequest("Invalid input for operation: " + what + ".");
    };
    std::string type = doc["provider:network_type"].is_string()
                           ? doc["provider:network_type"].get<std::string>()
                       : !config_.tenant_network_type.empty() ? config_.tenant_network_type
                                                              : config_.overlay;
    std::string physnet = doc["provider:physical_network"].is_string()
                              ? doc["provider:physical_network"].get<std::string>()
                              : std::string();
    const Json& given = doc["provider:segmentation_id"];
    bool tunnel = type == "geneve" || type == "vxlan";
    auto used = [&](int64_t id) {
      return !ctx.indexed("networks.segment", "networks", state::segmentKey(type, physnet, id))
                  .empty();
    };
    std::string kind_name = type == "vlan" ? "VLAN" : type == "vxlan" ? "VXLAN" : "Geneve";
    int64_t id = 0;
    if (type == "flat") {
      if (physnet.empty()) return invalid("physical_network required for flat provider network");
      if (!given.is_null()) return invalid("segmentation_id specified for flat provider network");
      if (used(0)) {
        return Error(
            Errc::Conflict,
            "Unable to create the flat network. Physical network " + physnet + " is in use.",
            "FlatNetworkInUse");
      }
    } else if (!tunnel && physnet.empty() && !given.is_null()) {
      return invalid("physical_network required for VLAN provider network");
    } else if (!tunnel && !physnet.empty() && !config_.vlan_ranges.empty() &&
               !config_.vlan_ranges.contains(physnet)) {
      return invalid("physical_network '" + physnet + "' unknown for VLAN provider network");
    } else if (tunnel && !physnet.empty()) {
      return invalid("provider:physical_network specified for " + kind_name + " network");
    }
    if (type != "flat" && !given.is_null()) {
      id = given.get<int64_t>();
      int64_t max = model::maxSegmentationId(type);
      if (id < 1 || id > max) {
        return invalid("segmentation_id out of range (1 through " + std::to_string(max) + ")");
      }
      if (used(id)) {
        if (tunnel) {
          return Error(
              Errc::Conflict,
              "Unable to create the network. The tunnel ID " + std::to_string(id) + " is in use.",
              "TunnelIdInUse");
        }
        return Error(Errc::Conflict,
                     "Unable to create the network. The VLAN " + std::to_string(id) +
                         " on physical network " + physnet + " is in use.",
                     "VlanIdInUse");
      }
    } else if (type != "flat") {
      // Tunnel ids come from the configured range, VLAN ids from the
      // physical network's ranges (any physical network's, if none is named).
      std::optional<int64_t> found;
      auto pick = [&](int64_t lo, int64_t hi) {
        if (found || lo > hi) return;
        auto span = static_cast<uint64_t>(hi - lo + 1);
        uint64_t start = randomEngine()() % span;
        for (uint64_t i = 0; i < span && !found; ++i) {
          auto candidate = lo + static_cast<int64_t>((start + i) % span);
          if (!used(candidate)) found = candidate;
        }
      };
      // The project's own segment ranges first, then the shared ones
      // (the configured defaults among them).
      std::string chosen = physnet;
      for (const auto& range : detail::segmentRangesFor(
               ctx.tables(), config_, doc.value("project_id", ""), type, physnet)) {
        physnet = tunnel ? chosen : range.physical_network;  // used() reads it
        pick(range.minimum, range.maximum);
        if (found) break;
      }
      if (!found) physnet = chosen;
      if (!found) {
        return Error(Errc::Unavailable,
                     "Unable to create the network. No tenant network is available for "
                     "allocation.",
                     "NoNetworkAvailable");
      }
      id = *found;
    }
    doc["provider:network_type"] = type;
    doc["provider:physical_network"] = physnet.empty() ? Json(nullptr) : Json(physnet);
    doc["provider:segmentation_id"] = type == "flat" ? Json(nullptr) : Json(id);
    ctx.claim(segmentClaim(doc), doc.value("id", ""));
    return ok();
  }

  model::NetworkConfig config_;
};

}  // namespace

std::unique_ptr<ResourceKind> makeNetworkKind(const model::NetworkConfig& config) {
  return std::make_unique<NetworkKind>(config);
}

}  // namespace canopy::api
