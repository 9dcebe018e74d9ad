// Service providers (Neutron's service-type): which implementation serves
// each advanced service. Canopy's routers are its own distributed ones.

#include "api/kind.h"

namespace canopy::api {
namespace {

using model::AttrType;

constexpr Extension kServiceTypeExtensions[] = {
    {"service-type", "Neutron Service Type Management",
     "API for retrieving service providers for Neutron advanced services"},
};

const model::ResourceSpec& serviceProviderSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "service-providers",
                          .member = "service_provider",
                          .plural = "service_providers",
                          .type_name = "ServiceProvider"};
    s.attrs.push_back({.name = "id", .visible = false});  // for markers
    s.attrs.push_back({.name = "service_type"});
    s.attrs.push_back({.name = "name"});
    s.attrs.push_back({.name = "default", .type = AttrType::Bool});
    return s;
  }();
  return spec;
}

class ServiceProviderKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return serviceProviderSpec(); }
  std::span<const Extension> extensions() const override { return kServiceTypeExtensions; }
  bool visible(const Json&, const Caller&, const state::Tables&) const override { return true; }
  bool derived() const override { return true; }
  std::vector<Json> deriveAll(const state::Tables&) const override {
    return {{{"id", "L3_ROUTER_NAT:canopy"},
             {"service_type", "L3_ROUTER_NAT"},
             {"name", "canopy"},
             {"default", true}}};
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeServiceProviderKind(const model::NetworkConfig&) {
  return std::make_unique<ServiceProviderKind>();
}

}  // namespace canopy::api
