// The registry of the kinds the API serves: a new kind is a file in kinds/
// and one line in each list below.

#include <map>
#include <memory>

#include "api/kind.h"

namespace canopy::api {

using MakeKind = std::unique_ptr<ResourceKind> (*)(const model::NetworkConfig&);

std::unique_ptr<ResourceKind> makeNetworkKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeSubnetKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makePortKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeSecurityGroupKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeSecurityGroupRuleKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeRouterKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeFloatingIpKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeIpAvailabilityKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeAddressScopeKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeSubnetPoolKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeRbacPolicyKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeAddressGroupKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeServiceProviderKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeAvailabilityZoneKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeSegmentRangeKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeSegmentKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeFlavorKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeServiceProfileKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeLocalIpKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeMeteringLabelKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeMeteringLabelRuleKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeQosPolicyKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeTrunkKind(const model::NetworkConfig&);
std::unique_ptr<ResourceKind> makeLogKind(const model::NetworkConfig&);

// In the order /v2.0/ lists them.
constexpr MakeKind kKinds[] = {
    makeNetworkKind,
    makeSubnetKind,
    makePortKind,
    makeSecurityGroupKind,
    makeSecurityGroupRuleKind,
    makeRouterKind,
    makeFloatingIpKind,
    makeIpAvailabilityKind,
    makeAddressScopeKind,
    makeSubnetPoolKind,
    makeRbacPolicyKind,
    makeAddressGroupKind,
    makeServiceProviderKind,
    makeAvailabilityZoneKind,
    makeSegmentRangeKind,
    makeSegmentKind,
    makeFlavorKind,
    makeServiceProfileKind,
    makeLocalIpKind,
    makeMeteringLabelKind,
    makeMeteringLabelRuleKind,
    makeQosPolicyKind,
    makeTrunkKind,
    makeLogKind,
};

std::vector<std::unique_ptr<ResourceKind>> makeResourceKinds(const model::NetworkConfig& config) {
  std::vector<std::unique_ptr<ResourceKind>> kinds;
  for (MakeKind make : kKinds) kinds.push_back(make(config));
  return kinds;
}

}  // namespace canopy::api

namespace canopy::api {

state::ModelState::DocumentCheck storedDocumentCheck() {
  auto kinds = std::make_shared<std::vector<std::unique_ptr<ResourceKind>>>(
      makeResourceKinds(model::NetworkConfig{}));
  auto specs = std::make_shared<std::map<std::string, const model::ResourceSpec*, std::less<>>>();
  for (const auto& k : *kinds) {
    if (!k->derived()) specs->emplace(k->spec().collection, &k->spec());
  }
  return [kinds, specs](std::string_view collection, std::string_view id,
                        const Json& doc) -> Result<void> {
    auto it = specs->find(collection);
    if (it == specs->end()) return ok();
    return model::checkStored(*it->second, id, doc);
  };
}

}  // namespace canopy::api
