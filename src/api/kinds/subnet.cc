// Subnets: CIDR, pools, gateway and routes checked against the network's
// other subnets.

#include "model/subnet.h"

#include "api/kind.h"

namespace canopy::api {
namespace {

using model::badRequest;

class SubnetKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return model::subnetSpec(); }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    std::string network_id = doc.value("network_id", "");
    const state::Document* network = ctx.find("networks", network_id);
    // Neutron: a subnet goes on a network the caller owns (or any, for an admin).
    if (network == nullptr || !(ctx.caller().is_admin ||
                                network->doc.value("project_id", "") == ctx.caller().project_id)) {
      return notFound(model::networkSpec(), network_id);
    }
    std::vector<IpPrefix> siblings;
    for (const Json* other : ctx.indexed("subnets.network", "subnets", network_id)) {
      if (auto c = IpPrefix::parse(other->value("cidr", ""))) siblings.push_back(*c);
    }
    if (auto r = model::completeNewSubnet(doc, siblings); !r) return r;
    ctx.touch("networks", network_id);
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (doc["gateway_ip"] == "auto") doc["gateway_ip"] = before["gateway_ip"];
    if (doc["allocation_pools"].is_null()) doc["allocation_pools"] = before["allocation_pools"];
    if (auto r = model::checkSubnetAddressing(doc); !r) return r;
    ctx.touch("networks", doc.value("network_id", ""));
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (!ctx.indexed("ports.subnet", "ports", id).empty()) {
      return Error(Errc::Conflict,
                   "Unable to complete operation on subnet " + id +
                       ": One or more ports have an IP allocation from this subnet.",
                   "SubnetInUse");
    }
    ctx.touch("networks", doc.value("network_id", ""));
    return ok();
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeSubnetKind(const model::NetworkConfig&) {
  return std::make_unique<SubnetKind>();
}

}  // namespace canopy::api
