// Ports: IPAM, MACs, security groups, bindings; floating IPs let go with them.

#include "model/port.h"

#include "api/detail/addresses.h"
#include "api/kind.h"
#include "model/router.h"

namespace canopy::api {
namespace {

using model::badRequest;

using detail::allocate;
using detail::checkSecurityGroups;
using detail::completeNewPort;
using detail::releasePortClaims;

class PortKind final : public ResourceKind {
 public:
  explicit PortKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return model::portSpec(); }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    std::string network_id = doc.value("network_id", "");
    const state::Document* network = ctx.find("networks", network_id);
    if (network == nullptr || !(ctx.caller().is_admin ||
                                network->doc.value("project_id", "") == ctx.caller().project_id ||
                                network->doc.value("shared", false))) {
      return notFound(model::networkSpec(), network_id);
    }
    return completeNewPort(doc, network->doc, ctx, config_, false);
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (doc["port_security_enabled"].is_null()) {
      doc["port_security_enabled"] = before["port_security_enabled"];
    }
    if (doc["security_groups"].is_null()) doc["security_groups"] = before["security_groups"];
    if (auto r = checkSecurityGroups(doc, ctx); !r) return r;
    if (doc["fixed_ips"].is_null()) doc["fixed_ips"] = before["fixed_ips"];
    if (doc["fixed_ips"] != before["fixed_ips"]) {
      auto ips = allocate(doc, before["fixed_ips"], ctx);
      if (!ips) return std::move(ips).error();
      doc["fixed_ips"] = std::move(*ips);
    }
    return ok();
  }

  // Ports of routers and floating IPs go with them, not through this API;
  // a VM's port takes its floating IPs' associations with it.
  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string owner = doc.value("device_owner", "");
    std::string device = doc.value("device_id", "");
    bool router_port = owner == model::kOwnerRouterInterface || owner == model::kOwnerRouterGateway;
    if ((router_port && ctx.current("routers", device) != nullptr) ||
        (owner == model::kOwnerFloatingIp && ctx.current("floatingips", device) != nullptr)) {
      return Error(Errc::Conflict,
                   "Port " + doc.value("id", "") +
                       " cannot be deleted directly via the port API: has device owner " + owner +
                       ".",
                   "ServicePortInUse");
    }
    disassociateFloatingIps(doc.value("id", ""), ctx);
    releasePortClaims(doc, ctx);
    return ok();
  }

 private:
  model::NetworkConfig config_;
};

}  // namespace

std::unique_ptr<ResourceKind> makePortKind(const model::NetworkConfig& config) {
  return std::make_unique<PortKind>(config);
}

}  // namespace canopy::api
